"""Reading a saved JSON report incrementally: the same values as json.loads, damaged files refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from datalint_persona.errors import InputError
from datalint_persona.reporters import render_json
from datalint_persona.reporters.report_stream import read_report_streaming
from reporters.test_reporters import make_result


def _read(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[list[str]]]:
    entries: list[dict[str, Any]] = []
    heads: list[list[str]] = []

    def take(entry: dict[str, Any], head: dict[str, Any]) -> None:
        entries.append(entry)
        heads.append(sorted(head))

    return read_report_streaming(str(path), take), entries, heads


def test_members_and_samples_are_those_json_loads_gives(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(render_json(make_result()), encoding="utf-8")
    expected = json.loads(path.read_text(encoding="utf-8"))
    head, entries, heads = _read(path)
    assert entries == expected.pop("samples") and len(entries) == 5
    assert head == expected
    # Keys are sorted in a written report: every member before "samples" is known to each sample.
    assert heads[0] == [
        "calibration",
        "datasets",
        "findings",
        "finished_at",
        "inputs",
        "invalid",
        "model",
        "rules",
    ]
    # Bit for bit, not just ==: the text of every value is the same when written again.
    assert json.dumps(entries) == json.dumps(json.loads(path.read_text(encoding="utf-8"))["samples"])


def test_numbers_read_as_json_loads_reads_them(tmp_path: Path) -> None:
    numbers = "[0.1, 0.30000000000000004, -0.0, 5e-324, 2.2250738585072014e-308, 1e300, 1E5, 3, -7, 1.0]"
    text = '{"schema": "persona-lint/report/v1", "samples": [{"x": ' + numbers + "}]}"
    path = tmp_path / "r.json"
    path.write_text(text, encoding="utf-8")
    _, entries, _ = _read(path)
    values, expected = entries[0]["x"], json.loads(numbers)
    assert [repr(v) for v in values] == [repr(v) for v in expected]  # -0.0 stays -0.0, ints stay ints
    assert [type(v) for v in values] == [type(v) for v in expected]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not JSON"),
        ('{"schema": "persona-lint/report/v1", "samples": [{"index": 0}', "not JSON"),
        ('{"schema": "persona-lint/report/v1"} {"again": 1}', "not JSON"),
        ("[1, 2]", "not a persona-lint JSON report"),
        ('{"samples": []}', "not a persona-lint JSON report"),
        ('{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": []}\n', "not JSON"),
    ],
)
def test_damaged_reports_are_refused_with_their_path(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "shard-1.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        _read(path)
    assert str(path) in str(caught.value)


def test_bytes_that_are_not_utf8_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(b'{"schema": "\xff\xfe"}')
    with pytest.raises(InputError, match="not JSON") as caught:
        _read(path)
    assert str(path) in str(caught.value) and "\\n" not in str(caught.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="can't read the report"):
        _read(tmp_path / "nowhere.json")
