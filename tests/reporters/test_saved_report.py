"""A saved JSON report renders every format exactly as the result it was written from (no model)."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import jsonschema
import pytest
from conftest import SARIF_SCHEMA
from rich.console import Console

from datalint_persona.errors import InputError
from datalint_persona.reporters import REPORTERS, render_json
from datalint_persona.reporters.saved_report import load_report
from datalint_persona.reporters.terminal import print_terminal
from datalint_persona.run_records import ScreenResult
from reporters.test_reporters import REPORT_SCHEMA, make_result

CALIBRATION: dict[str, dict[str, tuple[float, ...]]] = {
    "evil": {"normal": (0.0, 0.5, -0.5), "trait": (4.0, 5.0, 6.000000000000001)}
}


def _saved(result: ScreenResult, tmp_path: Path) -> ScreenResult:
    path = tmp_path / "report.json"
    path.write_text(render_json(result), encoding="utf-8")
    return load_report(str(path))


def _terminal(result: ScreenResult) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    print_terminal(result, console)
    return str(console.file.getvalue())  # type: ignore[attr-defined]


@pytest.mark.parametrize("output_format", sorted(REPORTERS))
def test_every_format_renders_the_same_from_the_saved_report(output_format: str, tmp_path: Path) -> None:
    result = dataclasses.replace(make_result(), calibration=CALIBRATION)
    saved = _saved(result, tmp_path)
    assert REPORTERS[output_format](saved) == REPORTERS[output_format](result)


def test_the_terminal_summary_is_the_same_from_the_saved_report(tmp_path: Path) -> None:
    result = make_result()
    text = _terminal(_saved(result, tmp_path))
    assert text == _terminal(result)
    assert "data/train.jsonl:1" in text and "Poison their [bold]food" in text  # the finding's excerpt


def test_the_saved_report_keeps_scores_verdicts_and_calibration(tmp_path: Path) -> None:
    result = dataclasses.replace(make_result(), calibration=CALIBRATION)
    saved = _saved(result, tmp_path)
    document = json.loads(render_json(result))
    jsonschema.validate(document, json.loads(REPORT_SCHEMA.read_text(encoding="utf-8")))
    assert document["calibration"]["evil"]["trait"][2] == 6.000000000000001
    assert saved.calibration == CALIBRATION
    assert saved.findings == result.findings and saved.rules == result.rules
    assert [s.scores for s in saved.samples] == [s.scores for s in result.samples]
    assert [s.sample.content_hash for s in saved.samples] == [s.sample.content_hash for s in result.samples]
    if SARIF_SCHEMA is not None:
        log = json.loads(REPORTERS["sarif"](saved))
        jsonschema.validate(log, json.loads(SARIF_SCHEMA.read_text(encoding="utf-8")))


def test_a_file_that_is_not_a_json_report_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "persona.sarif"
    path.write_text('{"version": "2.1.0"}', encoding="utf-8")
    with pytest.raises(InputError, match="not a persona-lint JSON report.*--format json"):
        load_report(str(path))
    path.write_text("{", encoding="utf-8")
    with pytest.raises(InputError, match=r"persona.sarif:1: not JSON"):
        load_report(str(path))
