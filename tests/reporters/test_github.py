"""The GitHub Actions workflow-command reporter: levels, escaping, baselines, dataset findings."""

from __future__ import annotations

import dataclasses
import re

from datalint_persona.reporters import REPORTERS
from datalint_persona.reporters.github import render_github
from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
from datalint_persona.types import Finding, InvalidRecord
from reporters.test_reporters import make_result

MODEL = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
SETTINGS = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", 0.05, 0.05)
HOSTILE = "50% sure,\r\nline two: ::error file=x.jsonl::injected, %0A stays literal"


def _result(*findings: Finding, invalid: tuple[InvalidRecord, ...] = ()) -> ScreenResult:
    return ScreenResult("0", MODEL, SETTINGS, (), (), (), (), (), findings, invalid, "t0", "t1")


def _unescape(text: str, *, property_value: bool) -> str:
    """Undo the escaping the way GitHub's runner does (one pass over %XX, %25 last)."""
    pairs = [("%0D", "\r"), ("%0A", "\n")] + ([("%3A", ":"), ("%2C", ",")] if property_value else [])
    for escaped, plain in [*pairs, ("%25", "%")]:
        text = text.replace(escaped, plain)
    return text


def _parse(line: str) -> tuple[str, dict[str, str], str]:
    """Split one workflow command as the runner does: ``::cmd k=v,k=v::data``."""
    match = re.fullmatch(r"::(\w+)(?: ([^:]*))?::(.*)", line)
    assert match is not None, line
    command, properties, data = match.groups()
    parsed = {}
    for pair in (properties or "").split(","):
        key, _, value = pair.partition("=")
        parsed[key] = _unescape(value, property_value=True)
    return command, parsed, _unescape(data, property_value=False)


def test_hostile_messages_and_paths_stay_one_command_each() -> None:
    source = "data/a,b:c%.jsonl"
    finding = Finding("persona-lint/evil", "error", "invalid", source, 7, HOSTILE)
    lines = render_github(_result(finding)).splitlines()
    assert len(lines) == 1
    assert "\r" not in lines[0] and "\n" not in lines[0]
    command, properties, message = _parse(lines[0])
    assert command == "error"
    assert properties == {"file": source, "line": "7", "title": "persona-lint/evil"}
    assert message == HOSTILE
    assert "file=data/a%2Cb%3Ac%25.jsonl,line=7," in lines[0]
    assert lines[0].endswith(
        "::50%25 sure,%0D%0Aline two: ::error file=x.jsonl::injected, %250A stays literal"
    )


def test_levels_pick_the_command_and_baselined_findings_are_left_out() -> None:
    findings = [
        Finding("r/e", "error", "sample", "d.jsonl", 1, "E"),
        Finding("r/w", "warning", "sample", "d.jsonl", 2, "W"),
        Finding("r/n", "note", "sample", "d.jsonl", 3, "N"),
        Finding("r/b", "error", "sample", "d.jsonl", 4, "B", baselined=True),
    ]
    parsed = [_parse(line) for line in render_github(_result(*findings)).splitlines()]
    assert [(c, p["line"], p["title"], m) for c, p, m in parsed] == [
        ("error", "1", "r/e", "E"),
        ("warning", "2", "r/w", "W"),
        ("notice", "3", "r/n", "N"),
    ]


def test_dataset_findings_annotate_the_file_without_a_line() -> None:
    dataset = Finding(
        "r/evil", "error", "dataset", "data/train.jsonl", 0, "Mean ΔP too high.", "evil", 2.5, 1.0
    )
    (line,) = render_github(_result(dataset)).splitlines()
    command, properties, message = _parse(line)
    assert (command, properties) == ("error", {"file": "data/train.jsonl", "title": "r/evil"})
    assert message == "Mean ΔP too high."  # the message as the rule wrote it, its numbers not repeated


def test_skipped_records_are_warnings_once_and_empty_runs_print_nothing() -> None:
    record = InvalidRecord("d.jsonl", 5, "bad JSON", "fix the quote")
    (line,) = render_github(_result(invalid=(record,))).splitlines()
    assert _parse(line) == (
        "warning",
        {"file": "d.jsonl", "line": "5", "title": "persona-lint/invalid-record"},
        "Invalid record: bad JSON Fix: fix the quote",
    )
    assert render_github(_result()) == ""


def test_the_hand_built_run_gives_one_line_per_unbaselined_finding() -> None:
    base = make_result()
    result = dataclasses.replace(
        base, findings=(dataclasses.replace(base.findings[0], baselined=True), *base.findings[1:])
    )
    text = REPORTERS["github"](result)
    active = [f for f in result.findings if not f.baselined]
    covered = {(f.source, f.line) for f in result.findings if f.kind == "invalid"}
    uncovered = [r for r in result.invalid if (r.source, r.line) not in covered]
    lines = text.splitlines()
    assert len(lines) == len(active) + len(uncovered)
    commands = [_parse(line) for line in lines]
    assert sorted((p["title"], p["file"], p.get("line")) for _, p, _ in commands[: len(active)]) == sorted(
        (f.rule_id, f.source, None if f.kind == "dataset" else str(max(f.line, 1))) for f in active
    )
