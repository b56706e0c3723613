"""Recombine the JSON reports of ``--shard i/N`` runs into the result of one unsharded run.

Per-sample values are taken as the shards wrote them and put back in global order (the sample
``index``); everything dataset-level (mean ΔP, bootstrap interval, thresholds, verdicts, dataset
findings, warnings that count samples) and every verdict (p- and q-values, sample and dataset
findings) is recomputed over the whole files, with the run's seed and the unsharded sample order,
so the bootstrap resamples exactly what one run would have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from datalint_persona.errors import InputError, PersonaLintError
from datalint_persona.reporters.saved_report import (
    calibration_from_document,
    read_report_document,
    rule_from_entry,
    run_records_from_document,
    sample_from_entry,
)
from datalint_persona.run_records import RunSettings, ScreenResult
from datalint_persona.types import Finding, InvalidRecord, RuleInfo, SampleScore
from datalint_persona.verdicts.decide import annotate, decide
from datalint_persona.verdicts.findings import dataset_findings, invalid_findings, sample_findings

# "inputs" holds each file's sha256: shards of different versions of the data must not merge.
_CONSISTENT = ("schema", "tool", "model", "vectors", "rules", "sources", "inputs")


def _read(path: str) -> dict[str, Any]:
    document = read_report_document(path)
    shard = document.get("settings", {}).get("shard")
    if not isinstance(shard, dict):
        raise InputError(
            "this report is not from a sharded run (its settings have no 'shard').",
            path=path,
            fix="screen with --shard i/N on each machine, then merge those reports.",
        )
    return document


def _check_shards(paths: Sequence[str], documents: Sequence[dict[str, Any]]) -> None:
    first = documents[0]
    base = {k: v for k, v in first["settings"].items() if k != "shard"}
    for path, document in zip(paths, documents, strict=True):
        for key in _CONSISTENT:
            if document.get(key) != first.get(key):
                raise InputError(
                    f"its '{key}' differs from that of {paths[0]}.",
                    path=path,
                    fix="merge only shards of one run (same files, model, vectors, rules).",
                )
        settings = {k: v for k, v in document["settings"].items() if k != "shard"}
        if settings != base:
            raise InputError(
                f"its settings differ from those of {paths[0]}.",
                path=path,
                fix="run every shard with the same options.",
            )
    count = first["settings"]["shard"]["count"]
    seen = sorted(d["settings"]["shard"]["index"] for d in documents)
    if any(d["settings"]["shard"]["count"] != count for d in documents) or seen != list(range(1, count + 1)):
        raise PersonaLintError(
            f"Got shards {', '.join(str(i) for i in seen)} of {count}: each shard 1..{count} is needed exactly once.",
            fix="pass one report per shard, all from the same --shard i/N split.",
        )


def merge_reports(paths: Sequence[str]) -> ScreenResult:
    """The :class:`ScreenResult` an unsharded run would have produced, from every shard's JSON report."""
    if not paths:
        raise PersonaLintError("No reports to merge.", fix="pass the JSON report of every shard.")
    documents = [_read(p) for p in paths]
    _check_shards(paths, documents)
    first = documents[0]
    all_rules = [rule_from_entry(r) for r in first["rules"]]
    rules = [r for r in all_rules if r.enabled]
    samples = _merged_samples(documents, rules)
    model, settings, vectors, inputs = run_records_from_document(paths[0], first)
    settings = replace(settings, shard=None)
    fdr = settings.fdr
    verdicts = decide(samples, rules, fdr=fdr, dataset_alpha=settings.dataset_fpr, seed=settings.seed)
    samples = list(annotate(samples, rules, verdicts))
    invalid = [InvalidRecord(**r) for d in documents for r in d["invalid"]]
    findings = [
        *invalid_findings(invalid),
        *dataset_findings(verdicts.summaries, rules),
        *_sample_findings_with_excerpts(documents, sample_findings(samples, rules, verdicts.flagged, fdr)),
    ]
    return ScreenResult(
        tool_version=first["tool"]["version"],
        model=model,
        settings=settings,
        vectors=vectors,
        rules=tuple(all_rules),
        sources=tuple(first["sources"]),
        samples=tuple(samples),
        summaries=verdicts.summaries,
        findings=tuple(findings),
        invalid=tuple(invalid),
        started_at=min(d["started_at"] for d in documents),
        finished_at=max(d["finished_at"] for d in documents),
        warnings=tuple(_merged_warnings(documents, samples, rules, settings)),
        calibration=calibration_from_document(first),
        inputs=inputs,
    )


def _shard_sample(entry: dict[str, Any], rules: Sequence[RuleInfo]) -> SampleScore:
    return sample_from_entry(entry, [rule.trait for rule in rules], with_verdicts=False)


def _merged_samples(documents: Sequence[dict[str, Any]], rules: Sequence[RuleInfo]) -> list[SampleScore]:
    """Every shard's samples in run order; their indices must be 0..n-1 exactly once."""
    samples = sorted(
        (_shard_sample(e, rules) for d in documents for e in d["samples"]), key=lambda s: s.index
    )
    if [s.index for s in samples] != list(range(len(samples))):
        raise PersonaLintError(
            "The shards' sample indices are not 0..n-1 exactly once.",
            fix="merge the reports of one --shard split of the same files.",
        )
    return samples


def _sample_findings_with_excerpts(
    documents: Sequence[dict[str, Any]], found: Sequence[Finding]
) -> list[Finding]:
    """The sample findings decided again over all samples, with the excerpts a shard wrote.

    The shards' own sample findings were decided on a part of the run; a report holds no
    response text, so a finding no shard reported has no excerpt.
    """
    excerpts = {
        (f["source"], f["line"], f["rule_id"]): (f.get("excerpt"), f.get("y_prime_excerpt"))
        for d in documents
        for f in d["findings"]
        if f["kind"] == "sample"
    }
    return [
        replace(f, excerpt=shown[0], y_prime_excerpt=shown[1] or f.y_prime_excerpt)
        if (shown := excerpts.get((f.source, f.line, f.rule_id)))
        else replace(f, excerpt=None)
        for f in found
    ]


def _merged_warnings(
    documents: Sequence[dict[str, Any]],
    samples: Sequence[SampleScore],
    rules: Sequence[RuleInfo],
    settings: RunSettings,
) -> list[str]:
    """The shards' warnings once each, with those that count samples recomputed over all of them."""
    from datalint_persona.verdicts.summaries import count_warnings

    max_tokens, max_new_tokens = settings.max_tokens, settings.max_new_tokens
    shard_counts = {
        w
        for d in documents
        for w in count_warnings([_shard_sample(e, rules) for e in d["samples"]], max_tokens, max_new_tokens)
    }
    warnings = list(dict.fromkeys(w for d in documents for w in d["warnings"] if w not in shard_counts))
    return warnings + count_warnings(samples, max_tokens, max_new_tokens)
