"""Deterministic JSON text for the file reporters (JSON report and SARIF).

Keys are sorted, lists keep their order, floats use Python's shortest round-tripping repr, and
NaN or infinity is refused (it is not JSON) with an error that names the score it came from.
"""

from __future__ import annotations

import json
import math
from pathlib import PurePath

from datalint_persona.errors import PersonaLintError
from datalint_persona.run_records import ScreenResult

__all__ = ["dump_json", "first_non_finite"]


def dump_json(document: object, result: ScreenResult, what: str) -> str:
    """Serialise ``document`` (built from ``result``) as indented JSON text ending in a newline.

    >>> from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
    >>> model = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
    >>> settings = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", 0.05, 0.05)
    >>> r = ScreenResult("0", model, settings, (), (), (), (), (), (), (), "t0", "t1")
    >>> dump_json({"b": 1.5, "a": [3, 1]}, r, "JSON report")
    '{\\n  "a": [\\n    3,\\n    1\\n  ],\\n  "b": 1.5\\n}\\n'
    """
    problem = first_non_finite(result)
    if problem is not None:
        raise PersonaLintError(
            f"Cannot write the {what}: {problem} is not a finite number.",
            fix="this is a scoring bug (for example a zero calibration std); please report it",
        )
    try:
        text = json.dumps(
            document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False, default=_jsonable
        )
    except ValueError as error:  # a NaN or infinity in settings, model info or vector metadata
        raise PersonaLintError(
            f"Cannot write the {what}: the run's settings or metadata hold a non-finite number ({error}).",
            fix="pass finite values for numeric options",
        ) from error
    return text + "\n"


def first_non_finite(result: ScreenResult) -> str | None:
    """Name the first NaN or infinite score in ``result`` (None if every score is finite)."""
    for sample in result.samples:
        for score in sample.scores:
            for name in ("projection_y", "projection_y_prime", "delta_p", "z"):
                value = getattr(score, name)
                if value is not None and not math.isfinite(value):
                    return f"{name} of {sample.sample.location} for trait '{score.trait}' ({value})"
    for summary in result.summaries:
        for name in ("mean_delta_p", "ci_low", "ci_high", "mean_projection_y", "mean_projection_y_prime"):
            value = getattr(summary, name)
            if not math.isfinite(value):
                return f"{name} of {summary.source} for trait '{summary.trait}' ({value})"
    for finding in result.findings:
        values = {"delta_p": finding.delta_p, "threshold": finding.threshold, "z": finding.z}
        values.update({f"extra.{key}": finding.extra[key] for key in sorted(finding.extra)})
        for name, value in values.items():
            if value is not None and not math.isfinite(value):
                return f"{name} of finding {finding.rule_id} at {finding.source}:{finding.line} ({value})"
    return None


def _jsonable(value: object) -> object:
    """Settings and model info may hold paths or sets; write them in a stable text form."""
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)
