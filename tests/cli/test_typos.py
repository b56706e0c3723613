"""A typo on the command line or in a config is exit 2 with one line naming the key and the
closest allowed value; none of these runs loads a model."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from datalint_persona.cli.main import main


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.jsonl").write_text('{"prompt": "Hi", "response": "Hello"}\n', encoding="utf-8")
    return tmp_path


def _lint(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _assert_one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unknown_trait_in_threshold(workdir: Path) -> None:
    _assert_one_line_error(
        _lint("train.jsonl", "--threshold", "evl=3"),
        "--threshold evl=3",
        "unknown trait 'evl'",
        "Did you mean 'evil'?",
        "use one of: apathetic, evil,",
    )


def test_unknown_trait_in_level(workdir: Path) -> None:
    _assert_one_line_error(
        _lint("train.jsonl", "--level", "sycophantic=note"),
        "--level sycophantic=note",
        "Did you mean 'sycophancy'?",
    )


def test_unknown_level_value(workdir: Path) -> None:
    result = _lint("train.jsonl", "--level", "evil=warnings")
    assert result.exit_code == 2
    assert "--level" in result.stderr and "Did you mean 'warning'?" in result.stderr
    assert "note, warning, error" in result.stderr


def test_unknown_trait_under_rules_in_the_discovered_config(workdir: Path) -> None:
    (workdir / ".persona-lint.yaml").write_text("rules:\n  evill:\n    level: note\n", encoding="utf-8")
    _assert_one_line_error(
        _lint("train.jsonl"), ".persona-lint.yaml:2: key 'rules.evill'", "Did you mean 'evil'?"
    )


def test_unknown_key_in_a_rule_entry(workdir: Path) -> None:
    (workdir / "cfg.yaml").write_text("rules:\n  evil:\n    treshold: 2\n", encoding="utf-8")
    _assert_one_line_error(
        _lint("train.jsonl", "--config", "cfg.yaml"),
        "cfg.yaml:3: key 'rules.evil'",
        "'treshold' was unexpected",
        "Did you mean 'sample-threshold'?",
    )


def test_broken_pyproject_is_an_error_naming_file_and_line(workdir: Path) -> None:
    (workdir / "pyproject.toml").write_text('[tool.persona-lint\nfail-on = "note"\n', encoding="utf-8")
    _assert_one_line_error(_lint("train.jsonl"), "pyproject.toml:1: invalid TOML")


def test_unknown_device(workdir: Path) -> None:
    _assert_one_line_error(
        _lint("train.jsonl", "--device", "cudaa"), "setting 'device'", "Did you mean 'cuda'?"
    )


def test_unknown_trait_in_trait_option_gets_a_suggestion(workdir: Path) -> None:
    result = _lint("vectors", "show", "sycophantic")
    assert result.exit_code == 2 and "Did you mean 'sycophancy'?" in result.stderr, result.output
