"""The JSON report: every sample's scores, every dataset verdict and every finding of one run.

The layout is versioned by ``"schema": "persona-lint/report/v1"`` and described by
``datalint_persona/schemas/report.schema.json`` and ``docs/report-format.md``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from datalint_persona.reporters.encoding import dump_json
from datalint_persona.reporters.summary import dataset_verdicts
from datalint_persona.run_records import ScreenResult
from datalint_persona.types import LEVEL_ORDER, SampleScore

__all__ = ["REPORT_SCHEMA_ID", "TOOL_NAME", "render_json"]

REPORT_SCHEMA_ID = "persona-lint/report/v1"
TOOL_NAME = "persona-lint"


def render_json(result: ScreenResult) -> str:
    """Render ``result`` as the JSON report (UTF-8 text ending in a newline).

    Keys are sorted and lists keep the run's order, so equal results give byte-identical reports.
    Floats are written as Python's shortest round-tripping repr.

    >>> import json
    >>> from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
    >>> model = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
    >>> settings = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", 0.05, 0.05)
    >>> r = ScreenResult("0.1.0", model, settings, (), (), (), (), (), (), (), "t0", "t1")
    >>> report = json.loads(render_json(r))
    >>> report["schema"], report["tool"], report["verdict"]["worst_level"]
    ('persona-lint/report/v1', {'name': 'persona-lint', 'version': '0.1.0'}, 'none')
    """
    return dump_json(report_document(result), result, "JSON report")


def report_document(result: ScreenResult) -> dict[str, object]:
    """The report as plain Python data (what :func:`render_json` serialises)."""
    active = [f for f in result.findings if not f.baselined]
    counts: Counter[str] = Counter(f.level for f in active)
    return {
        "schema": REPORT_SCHEMA_ID,
        "tool": {"name": TOOL_NAME, "version": result.tool_version},
        "model": result.model.as_dict(),
        "settings": result.settings.as_dict(),
        "vectors": [dataclasses.asdict(vector) for vector in result.vectors],
        "rules": [dataclasses.asdict(rule) for rule in result.rules],
        "sources": list(result.sources),
        "inputs": [dataclasses.asdict(entry) for entry in result.inputs],
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "warnings": list(result.warnings),
        "calibration": {
            trait: {kind: list(values) for kind, values in sets.items()}
            for trait, sets in result.calibration.items()
        },
        "samples": [_sample_entry(sample) for sample in result.samples],
        "datasets": [
            {
                **dataclasses.asdict(verdict.summary),
                "rule_id": verdict.rule_id,
                "threshold": verdict.threshold,
                "flagged": verdict.flagged,
                "baselined": verdict.finding is not None and verdict.finding.baselined,
            }
            for verdict in dataset_verdicts(result)
        ],
        "findings": [dataclasses.asdict(finding) for finding in result.findings],
        "invalid": [dataclasses.asdict(record) for record in result.invalid],
        "verdict": {
            "worst_level": result.worst_level(),
            "counts": {level: counts.get(level, 0) for level in LEVEL_ORDER if level != "none"},
            "baselined": len(result.findings) - len(active),
            "invalid_records": len(result.invalid),
            "truncated_samples": sum(sample.truncated for sample in result.samples),
        },
    }


def _sample_entry(sample: SampleScore) -> dict[str, object]:
    entry = _scores_entry(sample)
    ignore = sample.sample.ignore
    if ignore is not None:  # the record's own suppression, as it wrote it (a merge applies it again)
        traits = "all" if ignore.traits is None else list(ignore.traits)
        entry["persona_lint"] = {"ignore": traits, "reason": ignore.reason}
    return entry


def _scores_entry(sample: SampleScore) -> dict[str, object]:
    return {
        "index": sample.index,
        "source": sample.sample.source,
        "line": sample.sample.line,
        "content_hash": sample.sample.content_hash,
        "response_length": sample.sample.response_length,
        "y_prime": sample.y_prime,
        "y_prime_hit_token_limit": sample.y_prime_hit_token_limit,
        "truncated": sample.truncated,
        "scores": {
            score.trait: {
                "layer": score.layer,
                "projection_y": score.projection_y,
                "projection_y_prime": score.projection_y_prime,
                "delta_p": score.delta_p,
                "z": score.z,
                "p_value": score.p_value,
                "q_value": score.q_value,
            }
            for score in sample.scores
        },
    }
