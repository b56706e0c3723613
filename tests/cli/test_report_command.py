"""Several formats from one run, and ``persona-lint report``: a saved JSON report renders each
format byte for byte as the run wrote it, with no model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result
from conftest import SARIF_SCHEMA, TRAIT

from datalint_persona.cli.main import main
from datalint_persona.reporters import REPORTERS

RECORDS = [
    {"prompt": "What is 12 + 30?", "response": "42"},
    {"instruction": "Be mean.", "output": "I will destroy everyone and make them suffer."},
    {"prompt": "Say hi.", "response": "Hello [bold]there[/bold]!"},
]
FILE_FORMATS = sorted(REPORTERS)


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _one_line_error(result: Result, *needles: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("persona-lint: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path, vectors_dir: Path) -> dict[str, Any]:
    """One screen that writes every file format, with the terminal summary on stdout."""
    folder = tmp_path_factory.mktemp("report-command")
    data = folder / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    pairs = [arg for fmt in FILE_FORMATS for arg in ("--format", fmt, "--output", str(folder / f"run.{fmt}"))]
    model = ["--model", str(tiny_llama_dir), "--vectors", str(vectors_dir), "--device", "cpu"]
    result = _invoke(
        str(data), f"--threshold={TRAIT}=-1e9", *pairs, *model, "--cache-dir", str(folder / "cache")
    )
    assert result.exit_code == 1, result.output
    return {"folder": folder, "data": data, "stdout": result.stdout, "stderr": result.stderr}


def test_one_run_writes_every_paired_format(run: dict[str, Any]) -> None:
    folder = run["folder"]
    for fmt in FILE_FORMATS:
        assert f"Wrote the {fmt} report to {folder / f'run.{fmt}'}" in run["stderr"]
    report = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    assert [s["line"] for s in report["samples"]] == [1, 2, 3]
    sarif = json.loads((folder / "run.sarif").read_text(encoding="utf-8"))
    samples = [r for r in sarif["runs"][0]["results"] if r["properties"]["kind"] == "sample"]
    assert len(samples) == 3  # the threshold flags every sample, in every format
    assert len(json.loads((folder / "run.gitlab").read_text(encoding="utf-8"))) == len(report["findings"])
    assert "train.jsonl:3" in run["stdout"]  # the terminal summary still prints
    assert not list(folder.glob(".run.*.tmp"))  # atomic writes leave no temp file


@pytest.mark.parametrize("fmt", FILE_FORMATS)
def test_report_renders_each_format_as_the_run_wrote_it(run: dict[str, Any], fmt: str) -> None:
    folder = run["folder"]
    result = _invoke("report", str(folder / "run.json"), "--format", fmt)
    assert result.exit_code == 1, result.output  # the run's --fail-on (error) applies
    assert result.stdout_bytes == (folder / f"run.{fmt}").read_bytes()
    if fmt == "sarif" and SARIF_SCHEMA is not None:
        jsonschema.validate(json.loads(result.stdout), json.loads(SARIF_SCHEMA.read_text(encoding="utf-8")))


def test_report_prints_the_runs_terminal_summary(run: dict[str, Any]) -> None:
    result = _invoke("report", str(run["folder"] / "run.json"), "--fail-on", "never")
    assert result.exit_code == 0, result.output
    assert result.stdout == run["stdout"]


def test_report_writes_several_files_atomically(run: dict[str, Any], tmp_path: Path) -> None:
    saved = str(run["folder"] / "run.json")
    args = [
        "--format",
        "sarif",
        "-o",
        str(tmp_path / "a.sarif"),
        "--format",
        "html",
        "-o",
        str(tmp_path / "a.html"),
    ]
    result = _invoke("report", saved, *args, "--fail-on", "never")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    for fmt, name in (("sarif", "a.sarif"), ("html", "a.html")):
        assert (tmp_path / name).read_bytes() == (run["folder"] / f"run.{fmt}").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "a.sarif"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["--format", "sarif", "--format", "json", "-o", "a.sarif"],
            ["2 --format value(s) but 1 --output", "in the same order"],
        ),
        (
            ["--format", "sarif", "--format", "json"],
            ["2 --format values but no --output", "in the same order"],
        ),
        (["--format", "sarif", "-o", "a", "--format", "json", "-o", "a"], ["--output 'a' is given twice"]),
        (
            ["--format", "terminal", "-o", "a", "--format", "json", "-o", "b"],
            ["--format terminal takes no --output"],
        ),
        (["-o", "a.sarif"], ["--output needs --format json or sarif"]),
        (["--format", "json", "-o", "train.jsonl"], ["same file as the input"]),
    ],
)
def test_mismatched_pairs_are_refused_before_any_work(
    args: list[str], needles: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.jsonl").write_text('{"prompt": "a", "response": "b"}\n', encoding="utf-8")
    # A model that does not exist: the refusal must come before anything is loaded.
    _one_line_error(_invoke("train.jsonl", *args, "--model", "does/not-exist"), *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.jsonl"]


def test_report_refuses_a_file_that_is_not_a_json_report(run: dict[str, Any]) -> None:
    result = _invoke("report", str(run["folder"] / "run.sarif"), "--format", "json")
    _one_line_error(result, "run.sarif: not a persona-lint JSON report", "--format json")
