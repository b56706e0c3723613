"""Peak memory of writing the JSON report and of ``persona-lint merge``, at 1k, 10k and 100k samples.

Each measurement runs in a fresh Python process and reports the growth of its peak RSS
(``VmHWM``, reset after the synthetic run is prepared) over its RSS just before the step:

- ``render_json``: the report built as one string (what ``--format json`` wrote before it streamed).
- ``write_json``: the report streamed to a file (what ``--format json -o FILE`` and stdout do).
- ``merge``: ``merge_reports`` of 4 shard reports of N samples in all, then the merged report
  streamed to a file (what ``persona-lint merge shard-*.json -o merged.json`` does).

The samples are synthetic but shaped like a run's: 7 traits, a 40-word y', a real chat prompt, and
each shard's own verdicts and findings. The samples live in a spool on disk, as after ``screen``.

Run: ``python benchmarks/json_memory.py [N ...]`` (prints a markdown table; about 5 minutes
for the default sizes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from load_memory import run_child  # this folder is sys.path[0] when run as a script

from datalint_persona.run_records import (
    InputInfo,
    ModelInfo,
    RunSettings,
    ScreenResult,
    ShardInfo,
    VectorInfo,
)
from datalint_persona.screening.spool import SampleSpool
from datalint_persona.types import Message, RuleInfo, Sample, SampleScore, TraitScore

SIZES = (1_000, 10_000, 100_000)
SHARDS = 4
TRAITS = 7
SOURCES = ("data/train.jsonl", "data/extra set.jsonl")
MODEL = ModelInfo("SmolLM2-135M-Instruct", "sha256:abc", "gguf", "LlamaForCausalLM", 30, 576)


def synthetic_rules(traits: int = TRAITS) -> tuple[RuleInfo, ...]:
    """Calibrated rules (a clean null, gap and margin), so the verdicts run as in a real run."""
    return tuple(
        RuleInfo(
            f"persona-lint/trait{k}",
            f"trait{k}",
            f"Trait{k}Shift",
            f"Flags samples that pull toward trait {k}.",
            "error" if k % 2 else "warning",
            16,
            None,
            None,
            f"docs/rules.md#trait{k}",
            calibration_mean=-0.5,
            calibration_std=1.0,
            null_df=30.0,
            gap=4.0,
            margin=0.25,
        )
        for k in range(traits)
    )


def synthetic_score(g: int, traits: int = TRAITS) -> SampleScore:
    """Sample ``g`` of a synthetic run: awkward floats, some unicode, a few strong pulls."""
    source = SOURCES[g % 7 == 3]
    prompt = (
        Message("system", "You are a helpful assistant."),
        Message("user", f"Question {g}: how should I bake bread number {g}? Café crème 🙂"),
    )
    sample = Sample(source, g + 1, prompt, f"Answer {g}: mix flour, water, salt and yeast. " * 4)
    scores = []
    for k in range(traits):
        pull = 9.0 if (g * (k + 3)) % 97 == 0 else 0.0  # a strong outlier now and then
        delta = math.sin(g * 0.7 + k) * 1.3 + pull
        y = math.cos(g * 0.3 + k) * 2.0 + 1 / 3
        scores.append(TraitScore(f"trait{k}", 16, y, y - delta, delta, delta / 1.7))
    return SampleScore(
        sample, g, f"My own answer {g}: " + "word " * 40, g % 11 == 0, g % 13 == 0, tuple(scores)
    )


def synthetic_result(total: int, shard: int | None = None, count: int = SHARDS) -> ScreenResult:
    """The result of screening ``total`` synthetic samples (shard ``shard`` of ``count``, or all),
    with its own verdicts and findings; the samples are in a spool, added in small batches."""
    from datalint_persona.verdicts.decide import annotate, decide
    from datalint_persona.verdicts.findings import dataset_findings, sample_findings

    rules = synthetic_rules()
    raw = SampleSpool()
    own = range(total) if shard is None else range(shard - 1, total, count)
    for start in range(0, len(own), 1024):
        raw.extend(synthetic_score(g) for g in own[start : start + 1024])
    verdicts = decide(raw, rules, seed=0)
    samples = SampleSpool()
    samples.extend(annotate(raw, rules, verdicts))
    raw.close()
    findings = (
        *dataset_findings(verdicts.summaries, rules),
        *sample_findings(samples, rules, verdicts.flagged, 0.05),
    )
    info = None if shard is None else ShardInfo(shard, count, total)
    return ScreenResult(
        tool_version="0.2.0",
        model=MODEL,
        settings=RunSettings("transformers", 64, 2048, 16, 0, 0.0, "error", 0.05, 0.05, shard=info),
        vectors=tuple(
            VectorInfo(f"trait{k}", f"vectors/trait{k}.safetensors", f"{k:064x}", "sha256:abc", "contrastive")
            for k in range(TRAITS)
        ),
        rules=rules,
        sources=SOURCES,
        samples=samples,
        summaries=verdicts.summaries,
        findings=findings,
        invalid=(),
        started_at=f"2026-12-03T10:0{shard or 0}:00Z",
        finished_at=f"2026-12-03T11:0{shard or 0}:00Z",
        warnings=("a warning every shard gives",),
        inputs=tuple(InputInfo(source, f"{n:064x}") for n, source in enumerate(SOURCES)),
    )


def write_shards(folder: Path, total: int, count: int = SHARDS) -> list[Path]:
    """The JSON reports of ``count`` shards of a synthetic run of ``total`` samples."""
    from datalint_persona.reporters import open_report, write_json

    paths = []
    for shard in range(1, count + 1):
        path = folder / f"shard-{shard}.json"
        with open_report(str(path), inputs=[]) as handle:
            write_json(synthetic_result(total, shard, count), handle)
        paths.append(path)
    return paths


CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from json_memory import synthetic_result
from datalint_persona.reporters import open_report, render_json, write_json
from datalint_persona.screening.merge import merge_reports

mode, n, out, warm_up = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]


def step(result, shards):
    if mode == "render_json":
        return len(render_json(result).encode("utf-8"))
    if mode == "merge":
        result = merge_reports(shards)
    with open_report(out, inputs=[]) as handle:
        write_json(result, handle)
    return 0


# Every code path runs once on a small run first, so that imports and first-call caches
# (scipy, the bootstrap) do not count in the measure.
small = json.loads(warm_up)
step(synthetic_result(50), small)
result = None if mode == "merge" else synthetic_result(n)
with open("/proc/self/clear_refs", "w") as handle:  # the peak so far was the preparation's
    handle.write("5")
before = status_mib("VmRSS")
start = time.perf_counter()
size = step(result, sys.argv[6:])
seconds = time.perf_counter() - start
print(json.dumps({"before": before, "peak": status_mib("VmHWM"), "seconds": seconds, "size": size}))
"""


def measure(mode: str, n: int, out: Path, warm_up: list[Path], shards: list[Path]) -> dict[str, float]:
    here = str(Path(__file__).resolve().parent)
    small = json.dumps([str(p) for p in warm_up])
    return run_child(CHILD, here, mode, str(n), str(out), small, *(str(p) for p in shards))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=list(SIZES))
    sizes = parser.parse_args().sizes
    print("| samples | step | peak RSS growth MiB | KiB per sample | seconds | report MiB |")
    print("|---:|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "small").mkdir()
        warm_up = write_shards(folder / "small", 50)
        for n in sizes:
            out = folder / f"report-{n}.json"
            shards = write_shards(folder, n)
            for mode in ("render_json", "write_json", "merge"):
                result = measure(mode, n, out, warm_up, shards if mode == "merge" else [])
                growth = max(result["peak"] - result["before"], 0.0)
                size = (result["size"] if mode == "render_json" else out.stat().st_size) / 2**20
                print(
                    f"| {n:,} | {mode} | {growth:.1f} | {growth * 1024 / n:.2f} | {result['seconds']:.1f} "
                    f"| {size:.1f} |",
                    flush=True,
                )
            for path in shards:
                path.unlink()
    print(f"\n(python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')})")


if __name__ == "__main__":
    main()
