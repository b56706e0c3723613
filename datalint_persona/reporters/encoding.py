"""Deterministic JSON text for the file reporters (JSON report and SARIF).

Keys are sorted, lists keep their order, floats use Python's shortest round-tripping repr, and
NaN or infinity is refused (it is not JSON) with an error that names the score it came from.
:func:`write_json_array` writes a long list one entry at a time, in exactly the text that
:func:`dump_json` gives for the whole list, so a report with many samples is never held whole.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import PurePath
from typing import Protocol

from datalint_persona.errors import PersonaLintError
from datalint_persona.run_records import ScreenResult

__all__ = [
    "TextSink",
    "check_finite",
    "dump_json",
    "first_non_finite",
    "json_key",
    "json_text",
    "write_json_array",
]


class TextSink(Protocol):
    """Where a streamed report goes: an open text file, ``io.StringIO``, or the CLI's stdout."""

    def write(self, text: str, /) -> object: ...


def dump_json(document: object, result: ScreenResult, what: str) -> str:
    """Serialise ``document`` (built from ``result``) as indented JSON text ending in a newline.

    >>> from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
    >>> model = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
    >>> settings = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", 0.05, 0.05)
    >>> r = ScreenResult("0", model, settings, (), (), (), (), (), (), (), "t0", "t1")
    >>> dump_json({"b": 1.5, "a": [3, 1]}, r, "JSON report")
    '{\\n  "a": [\\n    3,\\n    1\\n  ],\\n  "b": 1.5\\n}\\n'
    """
    check_finite(result, what)
    return json_text(document, what) + "\n"


def check_finite(result: ScreenResult, what: str) -> None:
    """Refuse ``result`` when a score is NaN or infinite (JSON has no such number)."""
    problem = first_non_finite(result)
    if problem is not None:
        raise PersonaLintError(
            f"Cannot write the {what}: {problem} is not a finite number.",
            fix="this is a scoring bug (for example a zero calibration std); please report it",
        )


def json_text(value: object, what: str, *, level: int = 0) -> str:
    """``value`` as indented JSON text (no final newline), as it reads nested ``level`` deep.

    JSON strings hold no raw newline, so indenting every line gives exactly the text that the
    value has inside an enclosing document.

    >>> print(json_text({"b": [1], "a": "x"}, "JSON report", level=1))
    {
        "a": "x",
        "b": [
          1
        ]
      }
    """
    try:
        text = json.dumps(
            value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False, default=_jsonable
        )
    except ValueError as error:  # a NaN or infinity in settings, model info or vector metadata
        raise PersonaLintError(
            f"Cannot write the {what}: the run's settings or metadata hold a non-finite number ({error}).",
            fix="pass finite values for numeric options",
        ) from error
    return text.replace("\n", "\n" + "  " * level) if level else text


def json_key(key: str) -> str:
    """A member name as :func:`json_text` writes it."""
    return json.dumps(key, ensure_ascii=False)


def write_json_array(handle: TextSink, entries: Iterable[object], what: str, *, level: int) -> None:
    """Write ``entries`` to ``handle`` as the list :func:`json_text` writes ``level`` deep, one
    entry at a time (only one entry's text is in memory).

    >>> import io
    >>> out = io.StringIO()
    >>> write_json_array(out, iter([{"a": 1}, 2]), "JSON report", level=1)
    >>> out.getvalue() == json_text([{"a": 1}, 2], "JSON report", level=1)
    True
    """
    inner = "\n" + "  " * (level + 1)
    separator = "["
    for entry in entries:
        handle.write(separator + inner + json_text(entry, what, level=level + 1))
        separator = ","
    handle.write("[]" if separator == "[" else "\n" + "  " * level + "]")


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
