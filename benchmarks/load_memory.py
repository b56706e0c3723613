"""Peak memory of loading and validating a dataset, at 1k, 10k and 100k samples.

Writes a 100k-sample JSONL file to a temporary folder, then, for each size and each path, runs a
fresh Python process that reads the first N samples and reports its peak RSS (``ru_maxrss``) and
its RSS after the imports, before reading anything:

- ``load_samples``: what ``persona-lint screen`` does; every Sample is kept, because the engine
  batches y' generation and scoring over all of them.
- ``validate_sources``: what ``persona-lint validate`` does; records stream through the same
  reader and checks, and only counts, digests and the first invalid records are kept.

Run: ``python benchmarks/load_memory.py`` (prints a markdown table; about a minute).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (1_000, 10_000, 100_000)
CHILD = """
import json, resource, sys, time
from datalint_persona.loaders import load_samples
from datalint_persona.validation import validate_sources

def rss_mib():  # current RSS, from /proc
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

path, mode = sys.argv[1], sys.argv[2]
before = rss_mib()
start = time.perf_counter()
if mode == "load_samples":
    samples, invalid = load_samples([path])
    count = len(samples)
else:
    count = validate_sources([path]).n_samples
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
print(json.dumps({"count": count, "before": before, "peak": peak, "seconds": seconds}))
"""


def write_dataset(folder: Path, n: int) -> Path:
    path = folder / f"train-{n}.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            record = {
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": f"Question {i}: how should I bake bread number {i}?"},
                    {"role": "assistant", "content": f"Answer {i}: mix flour, water, salt and yeast. " * 4},
                ]
            }
            handle.write(json.dumps(record) + "\n")
    return path


def measure(path: Path, mode: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), mode], capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout))


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n in SIZES:
            path = write_dataset(Path(folder), n)
            size_mib = path.stat().st_size / 2**20
            for mode in ("load_samples", "validate_sources"):
                started = time.perf_counter()
                result = measure(path, mode)
                assert result["count"] == n, result
                rows.append((n, size_mib, mode, result, time.perf_counter() - started))
    print("| samples | file MiB | path | RSS after imports MiB | peak RSS MiB | growth MiB | read s |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for n, size_mib, mode, result, _ in rows:
        growth = max(result["peak"] - result["before"], 0.0)
        print(
            f"| {n:,} | {size_mib:.1f} | `{mode}` | {result['before']:.0f} | {result['peak']:.0f} "
            f"| {growth:.0f} | {result['seconds']:.2f} |"
        )


if __name__ == "__main__":
    main()
