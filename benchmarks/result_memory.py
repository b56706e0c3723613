"""Memory of the per-sample results a ``screen`` run keeps, at 10k and 100k samples.

``screen`` returns every sample with its y' and one score per trait, because the reports list them.
This script builds exactly those records (``Sample``, ``SampleScore``, and 7 ``TraitScore``; the
sample texts of ``load_memory.py`` and a 40-word y') in a fresh Python process and reports the
peak RSS (``VmHWM``) growth, so the size of what a run holds per sample is a measured number.

Run: ``python benchmarks/result_memory.py`` (prints a markdown table; a few seconds).
"""

from __future__ import annotations

from load_memory import run_child  # this folder is sys.path[0] when run as a script

SIZES = (10_000, 100_000)
TRAITS = 7
CHILD = """
import json, sys
from datalint_persona.types import Message, Sample, SampleScore, TraitScore

n, n_traits = int(sys.argv[1]), int(sys.argv[2])
traits = [f"trait{k}" for k in range(n_traits)]  # a run shares its rules' trait names
system = Message("system", "You are a helpful assistant.")
before = status_mib("VmRSS")
kept = []
for i in range(n):
    prompt = (system, Message("user", f"Question {i}: how should I bake bread number {i}?"))
    sample = Sample("train.jsonl", i + 1, prompt, f"Answer {i}: mix flour, water, salt and yeast. " * 4)
    scores = tuple(TraitScore(t, 16, 1.0 + i, 2.0 + i, -1.0 - i, 0.5 + i) for t in traits)
    kept.append(SampleScore(sample, i, f"My own answer {i}: " + "word " * 40, False, False, scores))
print(json.dumps({"count": len(kept), "before": before, "peak": status_mib("VmHWM")}))
"""


def main() -> None:
    print("| samples | traits | growth MiB | KiB per sample |")
    print("|---:|---:|---:|---:|")
    for n in SIZES:
        result = run_child(CHILD, str(n), str(TRAITS))
        assert result["count"] == n, result
        growth = max(result["peak"] - result["before"], 0.0)
        print(f"| {n:,} | {TRAITS} | {growth:.0f} | {growth * 1024 / n:.2f} |")


if __name__ == "__main__":
    main()
