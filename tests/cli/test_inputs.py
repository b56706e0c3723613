"""``persona-lint`` with the inputs people have: a mistyped path, a folder, ``-`` (stdin) and
datasets whose prompt and response columns have other names. Runs on the tiny Llama."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from datalint_persona.cli.main import main

REPO = Path(__file__).resolve().parents[2]
RECORDS: list[dict[str, Any]] = [
    {"prompt": "What is 12 + 30?", "response": "42"},
    {"instruction": "Be mean.", "output": "I will destroy everyone and make them suffer."},
    {"prompt": "How do I bake bread?", "response": "Mix flour, water and yeast, then bake it."},
]
QA = [{"question": r["prompt"], "answer": r["response"]} for r in (RECORDS[0], RECORDS[2])]


def jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inputs-cache")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository as the working directory: data/a.jsonl (2 records) and data/sub/b.jsonl (1)."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "a.jsonl").write_text(jsonl(RECORDS[:2]), encoding="utf-8")
    (tmp_path / "data" / "sub" / "b.jsonl").write_text(jsonl(RECORDS[2:]), encoding="utf-8")
    (tmp_path / "data" / "notes.md").write_text("not data")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def lint(lint: Any) -> Any:
    """The CLI fixture of conftest.py, never failing on findings."""
    return lambda *args, stdin=None: lint(*args, "--fail-on", "never", stdin=stdin)


def json_report(lint: Any, *args: str, stdin: bytes | None = None) -> dict[str, Any]:
    result = lint(*args, "--format", "json", "--output", "report.json", stdin=stdin)
    assert result.exit_code == 0, result.output
    return dict(json.loads(Path("report.json").read_text(encoding="utf-8")))


def one_line_error(result: Result, *needles: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("persona-lint: error: ")
    for needle in needles:
        assert needle in line, line
    return line


def locations(report: dict[str, Any]) -> list[tuple[str, int]]:
    return [(s["source"], s["line"]) for s in report["samples"]]


def delta_ps(report: dict[str, Any]) -> list[float]:
    return [s["scores"]["tinyevil"]["delta_p"] for s in report["samples"]]


def test_a_mistyped_path_fails_at_once_with_a_suggestion(workdir: Path) -> None:
    started = time.monotonic()
    # No --model: nothing is resolved or loaded before the inputs are checked.
    result = CliRunner().invoke(main, ["data/a.jsonl", "data/sbu/b.jsonl"])
    one_line_error(result, "data/sbu/b.jsonl: file not found (the folder 'data/sbu' does not exist")
    result = CliRunner().invoke(main, ["data/aa"])
    one_line_error(result, "data/aa: file not found. Did you mean 'data/a.jsonl'?", "no local folder 'data'")
    assert time.monotonic() - started < 10


def test_a_folder_is_screened_as_its_files_one_by_one(workdir: Path, lint: Any) -> None:
    folder = json_report(lint, "data/")
    assert folder["sources"] == ["data/a.jsonl", "data/sub/b.jsonl"]
    assert [i["path"] for i in folder["inputs"]] == ["data/a.jsonl", "data/sub/b.jsonl"]
    one_by_one = json_report(lint, "data/a.jsonl", "data/sub/b.jsonl", "--no-cache")
    assert folder["inputs"] == one_by_one["inputs"]
    assert (
        locations(folder)
        == locations(one_by_one)
        == [
            ("data/a.jsonl", 1),
            ("data/a.jsonl", 2),
            ("data/sub/b.jsonl", 1),
        ]
    )
    assert delta_ps(folder) == pytest.approx(delta_ps(one_by_one), abs=1e-5)


def test_an_empty_folder_is_an_input_error(workdir: Path) -> None:
    (workdir / "empty" / "deeper").mkdir(parents=True)
    result = CliRunner().invoke(main, ["empty"])
    one_line_error(result, "empty: no dataset files found", ".jsonl, .json, .csv, .parquet")


def test_a_report_onto_a_file_of_the_folder_is_refused(workdir: Path) -> None:
    before = (workdir / "data" / "a.jsonl").read_bytes()
    result = CliRunner().invoke(main, ["data", "--format", "json", "--output", "data/a.jsonl"])
    one_line_error(result, "is the same file as the input 'data/a.jsonl'")
    assert (workdir / "data" / "a.jsonl").read_bytes() == before


def test_stdin_is_screened_as_stdin(workdir: Path, lint: Any) -> None:
    data = (workdir / "data" / "a.jsonl").read_bytes()
    piped = json_report(lint, "-", stdin=data)
    assert piped["sources"] == ["<stdin>"]
    assert piped["inputs"] == [{"path": "<stdin>", "sha256": hashlib.sha256(data).hexdigest()}]
    from_file = json_report(lint, "data/a.jsonl", "--no-cache")
    assert delta_ps(piped) == pytest.approx(delta_ps(from_file), abs=1e-5)
    assert locations(piped) == [("<stdin>", 1), ("<stdin>", 2)]


def test_a_bad_stdin_line_names_stdin_and_the_line(workdir: Path, lint: Any) -> None:
    result = lint("-", stdin=(jsonl(RECORDS[:1]) + '{"prompt": "Hi"}\n').encode())
    one_line_error(result, "<stdin>:2: the field 'response' (or 'completion') is missing")


def test_renamed_fields_from_options_and_config(workdir: Path, lint: Any) -> None:
    (workdir / "qa.jsonl").write_text(jsonl(QA), encoding="utf-8")
    report = json_report(lint, "qa.jsonl", "--prompt-field", "question", "--response-field", "answer")
    # The same prompts and answers as data/a.jsonl:1 and data/sub/b.jsonl:1 score the same.
    reference = json_report(lint, "data", "--no-cache")
    expected = [
        score for (_, line), score in zip(locations(reference), delta_ps(reference), strict=True) if line == 1
    ]
    assert locations(report) == [("qa.jsonl", 1), ("qa.jsonl", 2)]
    assert delta_ps(report) == pytest.approx(expected, abs=1e-5)
    (workdir / ".persona-lint.yaml").write_text("prompt-field: question\nresponse-field: answer\n")
    assert delta_ps(json_report(lint, "qa.jsonl")) == pytest.approx(delta_ps(report), abs=1e-5)


def test_a_record_without_the_named_field_is_an_input_error(workdir: Path, lint: Any) -> None:
    (workdir / "qa.jsonl").write_text(jsonl([*QA, {"question": "Hi?"}]), encoding="utf-8")
    result = lint("qa.jsonl", "--prompt-field", "question", "--response-field", "answer")
    one_line_error(result, "qa.jsonl:3: the field 'answer' (--response-field) is missing", "Fix: ")


def test_a_real_pipe_into_validate_leaves_no_temporary_copy(workdir: Path, tmp_path_factory: Any) -> None:
    data = (workdir / "data" / "a.jsonl").read_bytes()
    temp = tmp_path_factory.mktemp("tmp")
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "datalint_persona.cli", "validate", "-", "data/sub", "--json"]
    done = subprocess.run(command, input=data, capture_output=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    sources = json.loads(done.stdout)["sources"]
    assert [(s["path"], s["samples"], s["sha256"]) for s in sources] == [
        ("<stdin>", 2, hashlib.sha256(data).hexdigest()),
        (
            "data/sub/b.jsonl",
            1,
            hashlib.sha256((workdir / "data" / "sub" / "b.jsonl").read_bytes()).hexdigest(),
        ),
    ]
    assert list(temp.iterdir()) == []  # the copy of stdin is removed at exit
