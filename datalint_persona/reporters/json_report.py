"""The JSON report: every sample's scores, every dataset verdict and every finding of one run.

The layout is versioned by ``"schema": "persona-lint/report/v1"`` and described by
``datalint_persona/schemas/report.schema.json`` and ``docs/report-format.md``.
"""

from __future__ import annotations

import dataclasses
import io
from collections import Counter
from collections.abc import Iterator

from datalint_persona.reporters.encoding import (
    TextSink,
    check_finite,
    json_key,
    json_text,
    write_json_array,
)
from datalint_persona.reporters.summary import dataset_verdicts
from datalint_persona.run_records import ScreenResult
from datalint_persona.types import LEVEL_ORDER, SampleScore

__all__ = ["REPORT_SCHEMA_ID", "TOOL_NAME", "render_json", "report_document", "write_json"]

REPORT_SCHEMA_ID = "persona-lint/report/v1"
TOOL_NAME = "persona-lint"
_WHAT = "JSON report"


def render_json(result: ScreenResult) -> str:
    """Render ``result`` as the JSON report (UTF-8 text ending in a newline).

    Keys are sorted and lists keep the run's order, so equal results give byte-identical reports.
    Floats are written as Python's shortest round-tripping repr. For many samples, write the
    report to a file with :func:`write_json` instead: it never holds the whole text.

    >>> import json
    >>> from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
    >>> model = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
    >>> settings = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", 0.05, 0.05)
    >>> r = ScreenResult("0.1.0", model, settings, (), (), (), (), (), (), (), "t0", "t1")
    >>> report = json.loads(render_json(r))
    >>> report["schema"], report["tool"], report["verdict"]["worst_level"]
    ('persona-lint/report/v1', {'name': 'persona-lint', 'version': '0.1.0'}, 'none')
    """
    text = io.StringIO()
    write_json(result, text)
    return text.getvalue()


def write_json(result: ScreenResult, handle: TextSink) -> None:
    """Write the JSON report of ``result`` to ``handle``, one sample (and one finding) at a time.

    The text is exactly :func:`render_json`'s, but memory does not grow with the number of
    samples: ``result.samples`` (a spool on disk after ``screen``) is read twice, once to check
    that every score is finite and once to write. Every error (a non-finite number) is raised
    before anything is written.

    >>> import io
    >>> from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
    >>> model = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
    >>> settings = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", 0.05, 0.05)
    >>> r = ScreenResult("0.1.0", model, settings, (), (), (), (), (), (), (), "t0", "t1")
    >>> out = io.StringIO(); write_json(r, out); out.getvalue().splitlines()[:2]
    ['{', '  "calibration": {},']
    """
    check_finite(result, _WHAT)
    # What does not grow with the run is rendered first, so that a bad value (a non-finite
    # setting) stops the report before its first byte; findings hold only checked numbers.
    rendered = {key: json_text(value, _WHAT, level=1) for key, value in _head(result).items()}
    truncated = 0

    def sample_entries() -> Iterator[dict[str, object]]:
        nonlocal truncated
        for sample in result.samples:
            truncated += sample.truncated
            yield _sample_entry(sample)

    streamed: dict[str, Iterator[object]] = {
        "samples": sample_entries(),
        "findings": (dataclasses.asdict(finding) for finding in result.findings),
        "invalid": (dataclasses.asdict(record) for record in result.invalid),
    }
    for n, key in enumerate(sorted([*rendered, *streamed, "verdict"])):
        handle.write(("," if n else "{") + "\n  " + json_key(key) + ": ")
        if key in streamed:
            write_json_array(handle, streamed[key], _WHAT, level=1)
        elif key == "verdict":  # after "samples" in key order, so the count is complete
            handle.write(json_text(_verdict(result, truncated), _WHAT, level=1))
        else:
            handle.write(rendered[key])
    handle.write("\n}\n")


def report_document(result: ScreenResult) -> dict[str, object]:
    """The report as plain Python data, every sample in memory (:func:`write_json` writes its text)."""
    return {
        **_head(result),
        "samples": [_sample_entry(sample) for sample in result.samples],
        "findings": [dataclasses.asdict(finding) for finding in result.findings],
        "invalid": [dataclasses.asdict(record) for record in result.invalid],
        "verdict": _verdict(result, sum(sample.truncated for sample in result.samples)),
    }


def _head(result: ScreenResult) -> dict[str, object]:
    """Every member of the report but the lists that grow with the run (``samples``, ``findings``,
    ``invalid``) and ``verdict``."""
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
    }


def _verdict(result: ScreenResult, truncated_samples: int) -> dict[str, object]:
    active = [f for f in result.findings if not f.baselined]
    counts: Counter[str] = Counter(f.level for f in active)
    return {
        "worst_level": result.worst_level(),
        "counts": {level: counts.get(level, 0) for level in LEVEL_ORDER if level != "none"},
        "baselined": len(result.findings) - len(active),
        "invalid_records": len(result.invalid),
        "truncated_samples": truncated_samples,
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
