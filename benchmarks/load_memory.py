"""Peak memory of loading and validating a dataset, at 1k, 10k and 100k samples.

Writes 1k-, 10k- and 100k-sample JSONL files and JSON arrays to a temporary folder, then, for
each file and each path, runs a
fresh Python process that reads all N samples and reports its peak RSS (``VmHWM``) and
its RSS after the imports, before reading anything:

- ``iter_dataset``: the reader ``persona-lint screen`` uses, with every Sample kept in a list.
- ``validate_sources``: what ``persona-lint validate`` does; records stream through the same
  reader and checks, and only counts, digests and the first invalid records are kept.

Run: ``python benchmarks/load_memory.py`` (prints a markdown table; about half a minute).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = (1_000, 10_000, 100_000)
# Prepended to each child's code: VmRSS (now) or VmHWM (peak) from /proc, in MiB.
STATUS_MIB = """
def status_mib(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
"""
CHILD = """
import json, sys, time
from datalint_persona.dataset.loaders import iter_dataset
from datalint_persona.dataset.validation import validate_sources

path, mode = sys.argv[1], sys.argv[2]
before = status_mib("VmRSS")
start = time.perf_counter()
if mode == "iter_dataset":
    samples = list(iter_dataset([path]))
    count = len(samples)
else:
    count = validate_sources([path]).n_samples
seconds = time.perf_counter() - start
peak = status_mib("VmHWM")
print(json.dumps({"count": count, "before": before, "peak": peak, "seconds": seconds}))
"""


def _record(i: int) -> dict[str, object]:
    return {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": f"Question {i}: how should I bake bread number {i}?"},
            {"role": "assistant", "content": f"Answer {i}: mix flour, water, salt and yeast. " * 4},
        ]
    }


def write_dataset(folder: Path, n: int, suffix: str) -> Path:
    """``n`` chat records as JSONL, or as one JSON array (one element per line)."""
    path = folder / f"train-{n}{suffix}"
    with path.open("w", encoding="utf-8") as handle:
        if suffix == ".jsonl":
            for i in range(n):
                handle.write(json.dumps(_record(i)) + "\n")
        else:  # written piece by piece: see measure() on why this process must stay small
            handle.write("[\n")
            for i in range(n):
                handle.write(("" if i == 0 else ",\n") + json.dumps(_record(i)))
            handle.write("\n]\n")
    return path


def run_child(code: str, *args: str) -> dict[str, float]:
    """Run ``code`` (with ``status_mib`` defined) in a fresh process; the JSON its last line prints.

    Its peak is /proc's VmHWM, which starts afresh at exec; getrusage's ru_maxrss would carry over
    this (forking) process's peak.
    """
    done = subprocess.run(
        [sys.executable, "-c", STATUS_MIB + code, *args], capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure(path: Path, mode: str) -> dict[str, float]:
    return run_child(CHILD, str(path), mode)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for suffix in (".jsonl", ".json"):
            for n in SIZES:
                path = write_dataset(Path(folder), n, suffix)
                size_mib = path.stat().st_size / 2**20
                for mode in ("iter_dataset", "validate_sources"):
                    result = measure(path, mode)
                    assert result["count"] == n, result
                    rows.append((suffix, n, size_mib, mode, result))
    print("| file | samples | MiB | path | RSS after imports MiB | peak RSS MiB | growth MiB | read s |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for suffix, n, size_mib, mode, result in rows:
        growth = max(result["peak"] - result["before"], 0.0)
        print(
            f"| {suffix} | {n:,} | {size_mib:.1f} | `{mode}` | {result['before']:.0f} | {result['peak']:.0f} "
            f"| {growth:.0f} | {result['seconds']:.2f} |"
        )


if __name__ == "__main__":
    main()
