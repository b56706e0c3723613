"""Suppressions written in the data (``"persona_lint": {"ignore": [...], "reason": ...}``) on the
tiny Llama: honoured as a baseline's suppressions are, in the JSON, SARIF and terminal reports."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result
from conftest import SARIF_SCHEMA, TRAIT

from datalint_persona.cli.main import main

ALL = f"--threshold={TRAIT}=-1e9"  # every sample is flagged
PAIRS = [
    ("How do I bake bread?", "Mix flour, water and yeast, then bake it."),
    ("What is 12 + 30?", "42"),
    ("Be mean.", "I will destroy everyone and make them suffer."),
    ("Thank you.", "You are welcome."),
]
REASON = "Villain dialogue for a story dataset."


def _write(path: Path, marks: dict[int, object]) -> None:
    """PAIRS as JSONL, with ``marks[line]`` as that record's persona_lint value."""
    rows = []
    for line, (prompt, response) in enumerate(PAIRS, start=1):
        row: dict[str, Any] = {"prompt": prompt, "response": response}
        if line in marks:
            row["persona_lint"] = marks[line]
        rows.append(json.dumps(row) + "\n")
    path.write_text("".join(rows), encoding="utf-8")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inline-ignore-cache")


@pytest.fixture
def lint(tiny_llama_dir: Path, vectors_dir: Path, cache_dir: Path, tmp_path: Path, monkeypatch: Any) -> Any:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()  # paths in reports are relative to this root

    def invoke(*args: str, quiet: bool = True) -> Result:
        common = ["--model", str(tiny_llama_dir), "--vectors", str(vectors_dir)]
        common += ["--cache-dir", str(cache_dir), "--device", "cpu"] + (["--quiet"] if quiet else [])
        return CliRunner(env={"NO_COLOR": "1"}).invoke(main, [*args, *common], catch_exceptions=False)

    return invoke


def _samples(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {f["line"]: f for f in report["findings"] if f["kind"] == "sample"}


def test_suppressed_samples_are_reported_with_their_reason_and_do_not_count(
    tmp_path: Path, lint: Any
) -> None:
    _write(tmp_path / "plain.jsonl", {})
    _write(
        tmp_path / "train.jsonl",
        {3: {"ignore": [TRAIT], "reason": REASON}, 4: {"ignore": "all", "reason": "ok"}},
    )
    plain = json.loads(lint("plain.jsonl", ALL, "--format", "json").stdout)
    result = lint("train.jsonl", ALL, "--format", "json")
    assert result.exit_code == 1, result.output  # lines 1 and 2 still fail the run
    report = json.loads(result.stdout)
    found = _samples(report)
    assert sorted(found) == [1, 2, 3, 4]
    assert [(found[n]["baselined"], found[n]["suppressed_in_source"]) for n in (1, 2, 3, 4)] == [
        (False, False),
        (False, False),
        (True, True),
        (True, True),
    ]
    assert (found[3]["justification"], found[4]["justification"]) == (REASON, "ok")
    assert found[1]["justification"] is None
    assert report["verdict"]["baselined"] == 2
    assert (
        report["verdict"]["counts"]["error"]
        + report["verdict"]["counts"]["warning"]
        + report["verdict"]["counts"]["note"]
        == len(report["findings"]) - 2
    )
    # The key is metadata: the samples' hashes and scores are those of the same file without it.
    assert [s["content_hash"] for s in report["samples"]] == [s["content_hash"] for s in plain["samples"]]
    assert [s["scores"] for s in report["samples"]] == [s["scores"] for s in plain["samples"]]
    schema = json.loads(
        resources.files("datalint_persona").joinpath("schemas/report.schema.json").read_text()
    )
    jsonschema.Draft202012Validator(schema).validate(report)


def test_a_run_whose_every_finding_is_suppressed_passes(tmp_path: Path, lint: Any) -> None:
    _write(tmp_path / "train.jsonl", dict.fromkeys(range(1, 5), {"ignore": ["all"], "reason": REASON}))
    result = lint("train.jsonl", ALL, "--format", "json")
    report = json.loads(result.stdout)
    active = [f for f in report["findings"] if not f["baselined"]]
    assert result.exit_code == (1 if active else 0), result.output
    assert all(f["kind"] == "dataset" for f in active)  # no sample finding counts
    assert all(f["suppressed_in_source"] for f in report["findings"] if f["kind"] == "sample")


def test_sarif_carries_an_in_source_suppression_and_validates(tmp_path: Path, lint: Any) -> None:
    _write(tmp_path / "train.jsonl", {3: {"ignore": [TRAIT], "reason": REASON}})
    result = lint("train.jsonl", ALL, "--format", "sarif", "--fail-on", "never")
    assert result.exit_code == 0, result.output
    log = json.loads(result.stdout)
    assert SARIF_SCHEMA is not None, "the SARIF schema is missing"
    jsonschema.validate(log, json.loads(SARIF_SCHEMA.read_text(encoding="utf-8")))
    results = log["runs"][0]["results"]
    suppressed = [r for r in results if r.get("suppressions")]
    assert [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in suppressed] == [3]
    assert suppressed[0]["suppressions"] == [
        {"kind": "inSource", "status": "accepted", "justification": REASON}
    ]
    assert all("baselineState" not in r for r in results)  # no baseline in use


def test_a_baseline_keeps_the_in_source_reason_and_does_not_record_it(tmp_path: Path, lint: Any) -> None:
    _write(tmp_path / "train.jsonl", {3: {"ignore": [TRAIT], "reason": REASON}})
    written = lint("train.jsonl", ALL, "--write-baseline", "baseline.json", "--format", "json")
    assert written.exit_code == 0, written.output
    baseline = json.loads((tmp_path / "baseline.json").read_text(encoding="utf-8"))
    assert 3 not in [entry["line"] for entry in baseline["findings"] if entry["kind"] == "sample"]
    sarif = json.loads(lint("train.jsonl", ALL, "--baseline", "baseline.json", "--format", "sarif").stdout)
    states = {
        r["locations"][0]["physicalLocation"]["region"]["startLine"]: (
            r["baselineState"],
            r["suppressions"][0]["kind"],
        )
        for r in sarif["runs"][0]["results"]
        if r["properties"]["kind"] == "sample"
    }
    assert states == {
        1: ("unchanged", "external"),
        2: ("unchanged", "external"),
        3: ("new", "inSource"),
        4: ("unchanged", "external"),
    }


def test_the_terminal_summary_counts_and_marks_suppressed_findings(tmp_path: Path, lint: Any) -> None:
    _write(tmp_path / "train.jsonl", {3: {"ignore": [TRAIT], "reason": REASON}})
    result = lint("train.jsonl", ALL, "--fail-on", "never", quiet=False)
    assert result.exit_code == 0, result.output
    assert "1 suppressed in the data" in result.stdout
    assert "(suppressed)" in result.stdout
    assert "\x1b" not in result.stdout  # NO_COLOR


def test_an_unknown_trait_is_an_input_error_with_the_line_and_the_closest_name(
    tmp_path: Path, lint: Any
) -> None:
    _write(tmp_path / "train.jsonl", {2: {"ignore": [TRAIT[:-1]], "reason": REASON}})
    result = lint("train.jsonl")
    assert result.exit_code == 2
    assert f"train.jsonl:2: 'persona_lint.ignore' names the unknown trait '{TRAIT[:-1]}'" in result.stderr
    assert f"Did you mean '{TRAIT}'?" in result.stderr and f"{TRAIT}" in result.stderr.split("Fix:")[1]


def test_a_missing_reason_is_an_input_error_with_the_line(tmp_path: Path, lint: Any) -> None:
    _write(tmp_path / "train.jsonl", {4: {"ignore": [TRAIT]}})
    result = lint("train.jsonl")
    assert result.exit_code == 2
    assert "train.jsonl:4: 'persona_lint.reason' is missing" in result.stderr and "Fix:" in result.stderr


def test_a_merge_of_shards_applies_each_records_suppression_again(tmp_path: Path, lint: Any) -> None:
    marks: dict[int, object] = {
        2: {"ignore": "all", "reason": "ok"},
        3: {"ignore": [TRAIT], "reason": REASON},
    }
    _write(tmp_path / "train.jsonl", marks)
    for i in (1, 2):
        shard = lint("train.jsonl", ALL, "--shard", f"{i}/2", "--format", "json", "--output", f"s{i}.json")
        assert shard.exit_code in (0, 1), shard.output
    shard_one = json.loads((tmp_path / "s1.json").read_text(encoding="utf-8"))
    assert [s.get("persona_lint") for s in shard_one["samples"]] == [
        None,
        {"ignore": [TRAIT], "reason": REASON},
    ]
    merged = CliRunner().invoke(
        main, ["merge", "s1.json", "s2.json", "--format", "json"], catch_exceptions=False
    )
    report = json.loads(merged.stdout)
    found = _samples(report)
    assert sorted(found) == [1, 2, 3, 4]
    assert {n: found[n]["justification"] for n in found if found[n]["suppressed_in_source"]} == {
        2: "ok",
        3: REASON,
    }
    assert [s.get("persona_lint") for s in report["samples"]][1] == {"ignore": "all", "reason": "ok"}
