"""Read a saved JSON report (``--format json``) back into the :class:`ScreenResult` it was written from.

Every other format renders from the result this gives exactly as from the run itself
(``persona-lint report r.json --format sarif``), with no model: the report holds every score,
verdict, finding (with its excerpts) and the calibration values the HTML report plots. Only the
samples' texts are missing; reporters show the findings' excerpts instead.
``persona-lint merge`` reads shard reports with the same helpers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from datalint_persona.errors import InputError
from datalint_persona.reporters.json_report import REPORT_SCHEMA_ID
from datalint_persona.run_records import InputInfo, ModelInfo, RunSettings, ScreenResult, VectorInfo
from datalint_persona.types import (
    DatasetSummary,
    Finding,
    InlineIgnore,
    InvalidRecord,
    ReportedSample,
    RuleInfo,
    SampleScore,
    TraitScore,
)

__all__ = [
    "ReportedSample",
    "calibration_from_document",
    "load_report",
    "read_report_document",
    "rule_from_entry",
    "run_records_from_document",
    "sample_from_entry",
]

_WRITE_JSON = "pass a report written with --format json."


def read_report_document(path: str) -> dict[str, Any]:
    """The parsed JSON report at ``path``; an :class:`InputError` if it is not one."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(
            f"can't read the report ({error.strerror}).", path=path, fix="check the path."
        ) from None
    except json.JSONDecodeError as error:
        raise InputError(f"not JSON ({error.msg}).", path=path, line=error.lineno, fix=_WRITE_JSON) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text, so not a JSON report.", path=path, fix=_WRITE_JSON) from None
    if not isinstance(document, dict) or document.get("schema") != REPORT_SCHEMA_ID:
        raise InputError("not a persona-lint JSON report.", path=path, fix=_WRITE_JSON)
    return document


def rule_from_entry(entry: Mapping[str, Any]) -> RuleInfo:
    """A ``rules`` entry of a report as the :class:`RuleInfo` it was written from."""
    names = {f.name for f in fields(RuleInfo)}
    values = {key: value for key, value in entry.items() if key in names}
    if values.get("own_answer_null") is not None:
        values["own_answer_null"] = tuple(values["own_answer_null"])  # JSON gives a list
    return RuleInfo(**values)


def _inline_ignore(value: Mapping[str, Any] | None) -> InlineIgnore | None:
    """A sample entry's ``persona_lint`` (the record's own suppression) as the run read it."""
    if value is None:
        return None
    traits = None if value["ignore"] == "all" else tuple(value["ignore"])
    return InlineIgnore(traits, value["reason"])


def sample_from_entry(
    entry: Mapping[str, Any], traits: Sequence[str] | None = None, *, with_verdicts: bool = True
) -> SampleScore:
    """A ``samples`` entry as a :class:`SampleScore`: one score per trait of ``traits``, in that
    order (default: every score the entry holds).

    ``with_verdicts=False`` leaves out the p- and q-values (merge decides them again).
    """
    scores = entry["scores"]
    return SampleScore(
        sample=ReportedSample(
            entry["source"],
            entry["line"],
            (),
            "",
            ignore=_inline_ignore(entry.get("persona_lint")),
            reported_hash=entry["content_hash"],
            reported_length=entry.get("response_length"),
        ),
        index=entry["index"],
        y_prime=entry["y_prime"],
        y_prime_hit_token_limit=entry["y_prime_hit_token_limit"],
        truncated=entry["truncated"],
        scores=tuple(
            _trait_score(trait, scores[trait], with_verdicts)
            for trait in (list(scores) if traits is None else traits)
        ),
    )


def _trait_score(trait: str, entry: Mapping[str, Any], with_verdicts: bool) -> TraitScore:
    return TraitScore(
        trait,
        entry["layer"],
        entry["projection_y"],
        entry["projection_y_prime"],
        entry["delta_p"],
        entry["z"],
        p_value=entry.get("p_value") if with_verdicts else None,
        q_value=entry.get("q_value") if with_verdicts else None,
    )


def run_records_from_document(
    path: str, document: Mapping[str, Any]
) -> tuple[ModelInfo, RunSettings, tuple[VectorInfo, ...], tuple[InputInfo, ...]]:
    """The model, settings, vectors and inputs a report records."""
    try:
        return (
            ModelInfo.from_dict(document["model"]),
            RunSettings.from_dict(document["settings"]),
            tuple(VectorInfo(**v) for v in document["vectors"]),
            tuple(InputInfo(**i) for i in document.get("inputs", [])),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(
            f"its model, settings, vectors or inputs are not those of a report of this version ({error}).",
            path=path,
            fix="use reports written by the same persona-lint version with --format json.",
        ) from None


def calibration_from_document(document: Mapping[str, Any]) -> dict[str, dict[str, tuple[float, ...]]]:
    """The report's ``calibration`` (per trait, the vector's held-out ΔP values) as a result holds it."""
    return {
        trait: {kind: tuple(values) for kind, values in sets.items()}
        for trait, sets in document.get("calibration", {}).items()
    }


def load_report(path: str) -> ScreenResult:
    """The :class:`ScreenResult` that the JSON report at ``path`` was rendered from.

    Rendering it again in any format gives the text the run itself wrote in that format.
    """
    document = read_report_document(path)
    model, settings, vectors, inputs = run_records_from_document(path, document)
    try:
        all_rules = tuple(rule_from_entry(entry) for entry in document["rules"])
        summary_names = {f.name for f in fields(DatasetSummary)}
        return ScreenResult(
            tool_version=document["tool"]["version"],
            model=model,
            settings=settings,
            vectors=vectors,
            rules=all_rules,
            sources=tuple(document["sources"]),
            samples=tuple(sample_from_entry(entry) for entry in document["samples"]),
            summaries=tuple(
                DatasetSummary(**{key: value for key, value in entry.items() if key in summary_names})
                for entry in document["datasets"]
            ),
            findings=tuple(Finding(**entry) for entry in document["findings"]),
            invalid=tuple(InvalidRecord(**entry) for entry in document["invalid"]),
            started_at=document["started_at"],
            finished_at=document["finished_at"],
            warnings=tuple(document["warnings"]),
            calibration=calibration_from_document(document),
            inputs=inputs,
        )
    except (KeyError, TypeError, AttributeError) as error:
        raise InputError(
            f"its rules, samples, datasets or findings are not those of a report of this version ({error}).",
            path=path,
            fix="re-render reports written by this persona-lint version with --format json.",
        ) from None
