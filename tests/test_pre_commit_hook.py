"""The hook's `files:` and `exclude:` patterns (.pre-commit-hooks.yaml), applied as pre-commit
applies them: Python ``re.search`` on the path relative to the repository root, a file screened
when `files` matches and `exclude` does not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

HOOKS = Path(__file__).resolve().parents[1] / ".pre-commit-hooks.yaml"

SCREENED = [
    "train.jsonl",
    "examples/demo/evil.jsonl",
    "data/train.json",
    "data/train.csv",
    "data/sft/part-0001.parquet",
    "datasets/chat.json",
    "dataset/alpaca.json",
    "training/pairs.csv",
    "train_v2/records.json",
    "finetuning/mix.parquet",
    "sft/chat.json",
    "projects/bot/data/train.json",
]
NOT_SCREENED = [
    "package.json",
    "package-lock.json",
    "frontend/package.json",
    "tsconfig.json",
    "tsconfig.build.json",
    "web/tsconfig.app.json",
    ".persona-lint-baseline.json",
    "persona-lint-baseline.json",
    "data/.persona-lint-baseline.json",
    "report.json",  # a report, outside any data folder
    "results.csv",
    "config/settings.json",
    "data/config.json",
    ".vscode/settings.json",
    ".github/renovate.json",
    "node_modules/some-lib/data/fixture.json",
    "node_modules/some-lib/train.jsonl",
    ".persona-lint-cache/export.jsonl",
    "data/my-dataset/dataset_info.json",  # the metadata of a save_to_disk folder
    "data/my-dataset/state.json",
    "data/README.md",
    "data/train.jsonl.bak",
    "metadata/stats.json",  # "metadata" is not "data"
    "src/database/schema.json",
    "pyproject.toml",
]


def _hook() -> dict[str, object]:
    hooks = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    assert [hook["id"] for hook in hooks] == ["persona-lint"]
    return dict(hooks[0])


def _screened(path: str) -> bool:
    hook = _hook()
    return bool(re.search(str(hook["files"]), path)) and not re.search(str(hook["exclude"]), path)


@pytest.mark.parametrize("path", SCREENED)
def test_the_hook_screens_dataset_files(path: str) -> None:
    assert _screened(path)


@pytest.mark.parametrize("path", NOT_SCREENED)
def test_the_hook_leaves_out_config_files_baselines_and_other_folders(path: str) -> None:
    assert not _screened(path)


def test_the_manifest_is_valid_for_pre_commit() -> None:
    clientlib = pytest.importorskip("pre_commit.clientlib")
    (hook,) = clientlib.load_manifest(str(HOOKS))
    assert hook["entry"] == "persona-lint screen" and hook["require_serial"] is True
    assert hook["types"] == ["file"]  # pre-commit's default: the patterns alone choose the files


def test_a_config_file_handed_to_the_cli_is_refused_as_not_a_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broader `files:` of the user's can still hand over package.json: one clear line, exit 2."""
    from click.testing import CliRunner

    from datalint_persona.cli.main import main

    (tmp_path / "package.json").write_text('{\n  "name": "web",\n  "version": "1.0.0"\n}\n')
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["screen", "package.json", "--no-cache"])
    assert result.exit_code == 2
    assert "package.json:1: the top-level JSON value is an object, so this is not a dataset" in result.output
    assert "exclude:" in result.output
