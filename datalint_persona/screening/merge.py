"""Recombine the JSON reports of ``--shard i/N`` runs into the result of one unsharded run.

Per-sample values are taken as the shards wrote them and put back in global order (the sample
``index``); everything dataset-level (mean ΔP, bootstrap interval, thresholds, verdicts, dataset
findings, warnings that count samples) and every verdict (p- and q-values, sample and dataset
findings) is recomputed over the whole files, with the run's seed and the unsharded sample order,
so the bootstrap resamples exactly what one run would have.

Only the reports' small members are held in memory: their samples are read one entry at a time
into a spool on disk, and the merged samples go to another, so a merge of 100k samples stays flat.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any, overload

from datalint_persona.errors import InputError, PersonaLintError
from datalint_persona.reporters.report_stream import read_report_streaming
from datalint_persona.reporters.saved_report import (
    calibration_from_document,
    rule_from_entry,
    run_records_from_document,
    sample_from_entry,
)
from datalint_persona.run_records import RunSettings, ScreenResult
from datalint_persona.screening.spool import SampleSpool
from datalint_persona.types import Finding, InvalidRecord, SampleScore
from datalint_persona.verdicts.decide import annotate, decide
from datalint_persona.verdicts.findings import dataset_findings, invalid_findings, sample_findings

# "inputs" holds each file's sha256: shards of different versions of the data must not merge.
_CONSISTENT = ("schema", "tool", "model", "vectors", "rules", "sources", "inputs")
_BATCH = 512  # sample entries converted before each write to the spool


def _read(path: str, spool: SampleSpool, indices: array[int]) -> dict[str, Any]:
    """The shard report at ``path`` without its samples, which are appended to ``spool`` (their
    ``index`` to ``indices``) as they are read."""
    batch: list[SampleScore] = []
    traits: list[str] | None = None
    before = len(indices)

    def take(entry: dict[str, Any], head: dict[str, Any]) -> None:
        nonlocal traits
        if traits is None:
            traits = _enabled_traits(path, head)
        try:
            score = _shard_sample(entry, traits)
            indices.append(score.index)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise InputError(
                f"sample entry {len(indices) - before + 1} of its 'samples' is not one a report of this "
                f"version holds ({type(error).__name__}: {error}).",
                path=path,
                fix="merge the reports as persona-lint wrote them (--shard i/N --format json).",
            ) from None
        batch.append(score)
        if len(batch) >= _BATCH:
            spool.extend(batch)
            batch.clear()

    document = read_report_streaming(path, take)
    spool.extend(batch)
    shard = document.get("settings", {}).get("shard")
    if not isinstance(shard, dict):
        raise InputError(
            "this report is not from a sharded run (its settings have no 'shard').",
            path=path,
            fix="screen with --shard i/N on each machine, then merge those reports.",
        )
    return document


def _enabled_traits(path: str, head: dict[str, Any]) -> list[str]:
    """The traits of the rules that ran, which a sample entry's scores are read for."""
    if "rules" not in head:
        raise InputError(
            "its 'samples' come before its 'rules'.",
            path=path,
            fix="write the report with sorted keys, as persona-lint does (json.dump(..., sort_keys=True)).",
        )
    try:
        return [rule.trait for rule in map(rule_from_entry, head["rules"]) if rule.enabled]
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(
            f"its 'rules' are not those of a report of this version ({error}).",
            path=path,
            fix="use reports written by the same persona-lint version with --format json.",
        ) from None


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
    """The :class:`ScreenResult` an unsharded run would have produced, from every shard's JSON report.

    Its ``samples`` are a spool on disk; the reports are read one sample entry at a time.
    """
    if not paths:
        raise PersonaLintError("No reports to merge.", fix="pass the JSON report of every shard.")
    read = SampleSpool()  # every shard's samples as read: shard after shard, each in file order
    indices: array[int] = array("q")
    documents, spans = [], []
    for path in paths:
        start = len(read)
        documents.append(_read(path, read, indices))
        spans.append(range(start, len(read)))
    _check_shards(paths, documents)
    first = documents[0]
    all_rules = [rule_from_entry(r) for r in first["rules"]]
    rules = [r for r in all_rules if r.enabled]
    in_run_order = _RunOrder(read, _run_order(indices))
    model, settings, vectors, inputs = run_records_from_document(paths[0], first)
    settings = replace(settings, shard=None)
    fdr = settings.fdr
    verdicts = decide(in_run_order, rules, fdr=fdr, dataset_alpha=settings.dataset_fpr, seed=settings.seed)
    samples = SampleSpool()
    samples.extend(annotate(in_run_order, rules, verdicts))
    warnings = _merged_warnings(documents, [(read[i] for i in span) for span in spans], samples, settings)
    read.close()
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
        samples=samples,
        summaries=verdicts.summaries,
        findings=tuple(findings),
        invalid=tuple(invalid),
        started_at=min(d["started_at"] for d in documents),
        finished_at=max(d["finished_at"] for d in documents),
        warnings=tuple(warnings),
        calibration=calibration_from_document(first),
        inputs=inputs,
    )


def _shard_sample(entry: dict[str, Any], traits: Sequence[str]) -> SampleScore:
    return sample_from_entry(entry, traits, with_verdicts=False)


def _run_order(indices: array[int]) -> array[int]:
    """Where each sample of the run sits in the spool: ``order[g]`` for global index ``g``.

    The shards' sample indices must be 0..n-1 exactly once.

    >>> list(_run_order(array("q", [1, 2, 0])))
    [2, 0, 1]
    """
    count = len(indices)
    order = array("q", [-1]) * count
    for position, index in enumerate(indices):
        if not 0 <= index < count or order[index] != -1:
            raise PersonaLintError(
                "The shards' sample indices are not 0..n-1 exactly once.",
                fix="merge the reports of one --shard split of the same files.",
            )
        order[index] = position  # n indices in 0..n-1, none twice: every index is there
    return order


class _RunOrder(Sequence[SampleScore]):
    """The spooled samples in run order (by global index), read from the spool as needed."""

    def __init__(self, spool: SampleSpool, order: array[int]) -> None:
        self._spool, self._order = spool, order

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, index: int) -> SampleScore: ...

    @overload
    def __getitem__(self, index: slice) -> list[SampleScore]: ...

    def __getitem__(self, index: int | slice) -> SampleScore | list[SampleScore]:
        if isinstance(index, slice):
            return [self._spool[i] for i in self._order[index]]
        return self._spool[self._order[index]]

    def __iter__(self) -> Iterator[SampleScore]:
        for position in self._order:
            yield self._spool[position]


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
    shard_samples: Sequence[Iterable[SampleScore]],
    samples: Iterable[SampleScore],
    settings: RunSettings,
) -> list[str]:
    """The shards' warnings once each, with those that count samples recomputed over all of them."""
    from datalint_persona.verdicts.summaries import count_warnings

    max_tokens, max_new_tokens = settings.max_tokens, settings.max_new_tokens
    shard_counts = {w for own in shard_samples for w in count_warnings(own, max_tokens, max_new_tokens)}
    warnings = list(dict.fromkeys(w for d in documents for w in d["warnings"] if w not in shard_counts))
    return warnings + count_warnings(samples, max_tokens, max_new_tokens)
