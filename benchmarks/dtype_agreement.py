"""Do bfloat16 runs give the verdicts of float32 runs?

Screens the same files twice with the bundled vectors of the embedded model, once with
``--dtype float32`` (the dtype the vectors were calibrated in) and once with ``--dtype bfloat16``,
and compares, per file and over all of them:

- y': the share of samples whose greedy answer is the same text;
- ΔP: Pearson's r between the two runs, per trait (scipy), and the largest difference;
- sample verdicts: the share of samples with the same set of sample findings (rule and level);
- dataset verdicts: the share of (file, rule) pairs whose dataset finding is the same.

The files: the calibration sets (calibration/clean), the demo, the independent own-written pairs
(their trait answers and their normal answers as two files each), and the first ``--per-file``
records of each file in ``../shared/external``. Each dtype keeps its own cache folder under
``--work``, so a second run of this script only compares.

    python benchmarks/dtype_agreement.py --per-file 100 --markdown benchmarks/DTYPE-AGREEMENT.md

It needs a CPU with bf16 units (AMX or AVX-512 BF16) or a CUDA device to run at speed; elsewhere
bf16 matrix products run at a fraction of the fp32 rate and this takes hours.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datalint_persona.model.dtypes import cpu_has_bf16_units  # noqa: E402
from datalint_persona.screening.engine import screen  # noqa: E402
from datalint_persona.settings import ScreenOptions  # noqa: E402

DTYPES = ("float32", "bfloat16")


def _write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    path.write_text(text, encoding="utf-8")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def prepare_files(work: Path, external: Path, per_file: int) -> dict[str, Path]:
    """The files to screen, by group name: the repo's own, and copies of the rest in ``work``."""
    files: dict[str, Path] = {}
    for path in sorted((ROOT / "calibration" / "clean").glob("*.jsonl")):
        files[f"calibration/{path.name}"] = path
    for path in sorted((ROOT / "examples" / "demo").glob("*.jsonl")):
        files[f"demo/{path.name}"] = path
    for path in sorted((ROOT / "evaluation" / "independent").glob("*.jsonl")):
        pairs = _read_jsonl(path)
        for side in ("positive", "negative"):
            records = [
                {"messages": [*p["messages"], {"role": "assistant", "content": p[side]}]} for p in pairs
            ]
            target = work / "data" / f"independent-{path.stem}-{side}.jsonl"
            _write_jsonl(target, records)
            files[f"independent/{path.stem} {side}"] = target
    for path in sorted(external.glob("*.jsonl")):
        target = work / "data" / f"external-{path.name}"
        _write_jsonl(target, _read_jsonl(path)[:per_file])
        files[f"external/{path.name}"] = target
    return files


def run(files: dict[str, Path], dtype: str, work: Path) -> tuple[Any, float]:
    options = ScreenOptions(
        device="cpu", dtype=dtype, cache_dir=str(work / f"cache-{dtype}"), fail_on="never"
    )
    started = time.perf_counter()
    shown: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        step = max(total // 10, 1)
        if done >= total or done // step != shown.get(stage, -1):
            shown[stage] = done // step
            print(f"  {dtype} {stage}: {done}/{total}", file=sys.stderr, flush=True)

    result = screen([str(p) for p in files.values()], options, progress=progress)
    return result, time.perf_counter() - started


def _by_sample(result: Any) -> dict[tuple[str, int], dict[str, Any]]:
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for s in result.samples:
        rows[(s.sample.source, s.sample.line)] = {
            "y_prime": s.y_prime,
            "delta_p": {t.trait: t.delta_p for t in s.scores},
            "findings": set(),
        }
    for f in result.findings:
        if f.kind == "sample" and (f.source, f.line) in rows:
            rows[(f.source, f.line)]["findings"].add((f.rule_id, f.level))
    return rows


def _dataset_verdicts(result: Any) -> dict[tuple[str, str], str]:
    verdicts: dict[tuple[str, str], str] = {}
    for f in result.findings:
        if f.kind == "dataset":
            verdicts[(f.source, f.rule_id)] = f.level
    return verdicts


def compare(files: dict[str, Path], results: dict[str, Any]) -> dict[str, Any]:
    """Per group and overall agreement between the float32 and bfloat16 runs."""
    a, b = (_by_sample(results[d]) for d in DTYPES)
    assert a.keys() == b.keys(), "the two runs screened different samples"
    source_of = {}
    for group, path in files.items():
        source_of[group] = next(
            (s for s in results["float32"].sources if Path(s).name == path.name), path.name
        )
    rules = sorted({r.id for r in results["float32"].rules})
    da, db = (_dataset_verdicts(results[d]) for d in DTYPES)

    def summary(keys: list[tuple[str, int]], sources: set[str]) -> dict[str, Any]:
        traits = sorted(a[keys[0]]["delta_p"]) if keys else []
        r_by_trait = {}
        worst = 0.0
        for trait in traits:
            x = np.array([a[k]["delta_p"][trait] for k in keys])
            y = np.array([b[k]["delta_p"][trait] for k in keys])
            r_by_trait[trait] = float(stats.pearsonr(x, y).statistic) if len(keys) > 2 else float("nan")
            worst = max(worst, float(np.max(np.abs(x - y))))
        same_verdict = sum(a[k]["findings"] == b[k]["findings"] for k in keys)
        flagged_either = sum(bool(a[k]["findings"] or b[k]["findings"]) for k in keys)
        pairs = [(s, r) for s in sorted(sources) for r in rules]
        return {
            "samples": len(keys),
            "same_y_prime": sum(a[k]["y_prime"] == b[k]["y_prime"] for k in keys) / max(len(keys), 1),
            "delta_p_r": r_by_trait,
            "delta_p_r_min": min(r_by_trait.values()) if r_by_trait else float("nan"),
            "max_abs_delta_p_difference": worst,
            "same_sample_verdict": same_verdict / max(len(keys), 1),
            "flagged_in_either": flagged_either,
            "differing_samples": len(keys) - same_verdict,
            "flagged_float32": sum(bool(a[k]["findings"]) for k in keys),
            "flagged_bfloat16": sum(bool(b[k]["findings"]) for k in keys),
            "dataset_pairs": len(pairs),
            "same_dataset_verdict": sum(da.get(p) == db.get(p) for p in pairs) / max(len(pairs), 1),
            "dataset_findings_float32": sum(p in da for p in pairs),
            "dataset_findings_bfloat16": sum(p in db for p in pairs),
        }

    means = [{(m.source, m.trait): m.mean_delta_p for m in results[d].summaries} for d in DTYPES]
    common = sorted(means[0].keys() & means[1].keys())
    x = np.array([means[0][k] for k in common])
    y = np.array([means[1][k] for k in common])
    file_means = {
        "pairs": len(common),
        "r": float(stats.pearsonr(x, y).statistic) if len(common) > 2 else float("nan"),
        "max_abs_difference": float(np.max(np.abs(x - y))) if common else float("nan"),
        "median_abs_difference": float(np.median(np.abs(x - y))) if common else float("nan"),
    }
    # A stricter look than the run's verdicts (which flag few samples): each sample and trait
    # against the fixed ΔP threshold the vector was calibrated with (--threshold's default scale).
    fixed = _fixed_thresholds()
    crossings = [
        (a[k]["delta_p"][t] > fixed[t], b[k]["delta_p"][t] > fixed[t], a[k]["y_prime"] == b[k]["y_prime"])
        for k in a
        for t in a[k]["delta_p"]
        if t in fixed
    ]

    def same_side(rows: list[tuple[bool, bool, bool]]) -> float:
        return sum(x == y for x, y, _ in rows) / max(len(rows), 1)

    threshold_check = {
        "pairs": len(crossings),
        "above_float32": sum(x for x, _, _ in crossings),
        "above_bfloat16": sum(y for _, y, _ in crossings),
        "same": same_side(crossings),
        "same_where_y_prime_same": same_side([c for c in crossings if c[2]]),
        "same_where_y_prime_differs": same_side([c for c in crossings if not c[2]]),
    }
    groups = {}
    for group in files:
        source = source_of[group]
        keys = sorted(k for k in a if k[0] == source)
        groups[group] = summary(keys, {source})
    overall = summary(sorted(a), set(source_of.values()))
    return {
        "groups": groups,
        "overall": overall,
        "file_means": file_means,
        "fixed_threshold": threshold_check,
    }


def _fixed_thresholds() -> dict[str, float]:
    """Each bundled vector's calibrated fixed sample threshold, by trait."""
    out = {}
    for path in sorted((ROOT / "vectors" / "smollm2-135m-instruct").glob("*.json")):
        calibration = json.loads(path.read_text(encoding="utf-8")).get("calibration")
        if isinstance(calibration, dict) and "sample_threshold" in calibration:
            out[path.stem] = float(calibration["sample_threshold"])
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# float32 against bfloat16",
        "",
        f"Written by `python benchmarks/dtype_agreement.py --per-file {report['per_file']}` on "
        f"{report['written']}, with the bundled vectors (calibrated in float32). Each file was "
        "screened once in each dtype, with default settings.",
        "",
        "| files | samples | same y′ | ΔP r (lowest trait) | largest ΔP difference | same sample verdict | "
        "flagged fp32 / bf16 | same dataset verdict | dataset findings fp32 / bf16 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [*report["groups"].items(), ("**all**", report["overall"])]
    for name, s in rows:
        lines.append(
            f"| {name} | {s['samples']} | {s['same_y_prime']:.0%} | {s['delta_p_r_min']:.3f} | "
            f"{s['max_abs_delta_p_difference']:.2f} | {s['same_sample_verdict']:.1%} | "
            f"{s['flagged_float32']} / {s['flagged_bfloat16']} | {s['same_dataset_verdict']:.1%} | "
            f"{s['dataset_findings_float32']} / {s['dataset_findings_bfloat16']} |"
        )
    o = report["overall"]
    lines += [
        "",
        "ΔP correlation over all samples, by trait: "
        + ", ".join(f"{t} {r:.4f}" for t, r in sorted(o["delta_p_r"].items())),
        "",
        f"A file's mean ΔP, over {report['file_means']['pairs']} (file, trait) pairs: r = "
        f"{report['file_means']['r']:.4f}, median |difference| {report['file_means']['median_abs_difference']:.3f}, "
        f"largest {report['file_means']['max_abs_difference']:.3f}.",
        "",
        f"Each sample and trait against the vector's calibrated fixed threshold "
        f"({report['fixed_threshold']['pairs']} pairs): above it in float32 "
        f"{report['fixed_threshold']['above_float32']}, in bfloat16 {report['fixed_threshold']['above_bfloat16']}; "
        f"the same side in both {report['fixed_threshold']['same']:.2%} "
        f"({report['fixed_threshold']['same_where_y_prime_same']:.2%} where y′ is the same text, "
        f"{report['fixed_threshold']['same_where_y_prime_differs']:.2%} where it differs).",
        "",
        "Screening time (all files, cold caches, model load included): "
        + (
            ", ".join(f"{d} {report['seconds'][d]:.0f} s" for d in DTYPES)
            if all(d in report["seconds"] for d in DTYPES)
            else "not measured (a run started from a warm cache)"
        )
        + f"; CPU bf16 units: {'yes' if report['cpu_bf16_units'] else 'no'}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--external", type=Path, default=ROOT.parent / "shared" / "external")
    parser.add_argument("--per-file", type=int, default=100, help="records taken from each external file")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work" / "dtype-agreement")
    parser.add_argument("--json", type=Path, help="write the comparison as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the comparison as a Markdown table here")
    parser.add_argument(
        "--only", nargs="*", default=(), help="screen only the groups starting so (demo, external, ...)"
    )
    args = parser.parse_args(argv)
    files = prepare_files(args.work, args.external, args.per_file)
    if args.only:
        files = {g: p for g, p in files.items() if g.startswith(tuple(args.only))}
    results: dict[str, Any] = {}
    timings = args.work / "seconds.json"  # of the runs that screened with cold caches
    seconds = json.loads(timings.read_text(encoding="utf-8")) if timings.is_file() else {}
    for dtype in DTYPES:
        print(f"screening {len(files)} files in {dtype} ...", file=sys.stderr, flush=True)
        results[dtype], took = run(files, dtype, args.work)
        if results[dtype].cache_stats.get("hits", 0) == 0:
            seconds[dtype] = took
            timings.write_text(json.dumps(seconds), encoding="utf-8")
        print(f"  {took:.0f} s", file=sys.stderr, flush=True)
    report = compare(files, results)
    report["seconds"] = seconds
    report["cpu_bf16_units"] = cpu_has_bf16_units()
    report["per_file"] = args.per_file
    report["written"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = markdown(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
