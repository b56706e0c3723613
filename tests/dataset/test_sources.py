"""Tests for datalint_persona.dataset.sources: mistyped paths, folders, ``-`` (stdin) and hub ids."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from datalint_persona.dataset.loaders import iter_dataset, scan_dataset
from datalint_persona.dataset.sources import (
    check_sources,
    close_names,
    expand_sources,
    locate,
    looks_like_hub_id,
)
from datalint_persona.errors import InputError
from datalint_persona.types import InvalidRecord, Sample

RECORD = {"prompt": "Hi", "response": "Hello!"}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake git repository as the working directory, so names are relative to it."""
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) any call that would go to the Hugging Face hub."""
    datasets = pytest.importorskip("datasets")
    calls: list[str] = []

    def load_dataset(name: str, **_: object) -> None:
        calls.append(name)
        raise AssertionError(f"{name} went to the hub")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def write(path: Path, *records: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def stdin_of(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


# --- a mistyped local path is an error at once, not a hub id ---------------------------------


def test_typo_in_an_existing_folder_suggests_the_file(repo: Path, no_hub: list[str]) -> None:
    write(repo / "data" / "train.jsonl", RECORD)
    write(repo / "data" / "test.jsonl", RECORD)
    started = time.monotonic()
    with pytest.raises(InputError) as caught:
        list(iter_dataset(["data/trian"]))
    assert time.monotonic() - started < 2
    assert no_hub == []
    assert caught.value.path == "data/trian" and caught.value.line is None
    assert caught.value.problem == "file not found. Did you mean 'data/train.jsonl'?"
    assert "no local folder 'data'" in (caught.value.fix or "")


@pytest.mark.parametrize(
    "name",
    ["./data/trian", "~/data/trian", "data/sub/trian", "someone/train.jsonl", "trian", "data\\trian"],
)
def test_names_that_look_local_are_never_hub_ids(repo: Path, no_hub: list[str], name: str) -> None:
    with pytest.raises(InputError, match="file not found"):
        check_sources([name])
    assert no_hub == []


def test_missing_folder_is_named(repo: Path) -> None:
    with pytest.raises(InputError) as caught:
        locate("dta/sub/train.jsonl")
    assert caught.value.problem == "file not found (the folder 'dta/sub' does not exist either)"


def test_a_bare_name_gets_suggestions_from_the_working_directory(repo: Path) -> None:
    write(repo / "train.jsonl", RECORD)
    with pytest.raises(InputError) as caught:
        locate("trian.jsonl")
    assert caught.value.problem == "file not found. Did you mean 'train.jsonl'?"


def test_owner_name_without_a_local_owner_folder_is_still_a_hub_id(repo: Path) -> None:
    write(repo / "data" / "train.jsonl", RECORD)
    where = locate("someone/tiny-chat")
    assert (where.kind, where.shown) == ("hub", "someone/tiny-chat")
    assert looks_like_hub_id("HuggingFaceH4/ultrachat_200k")
    assert not looks_like_hub_id("data/tiny-chat")  # the folder data exists


def test_close_names_compare_without_extensions() -> None:
    names = ["trains.jsonl", "train.jsonl", "eval.csv", ".train.jsonl", "README.md"]
    assert close_names("trian", names) == ["train.jsonl", "trains.jsonl"]
    assert close_names("zzzz", names) == []


# --- a folder stands for every dataset file under it -------------------------------------------


def test_folder_expands_recursively_sorted_with_given_prefix(repo: Path) -> None:
    for name in ("b.csv", "a/z.parquet", "a/y.JSON", "c.jsonl", "notes.txt", ".hidden/x.jsonl", ".x.jsonl"):
        (repo / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / "data" / name).write_text("")
    assert expand_sources(["data/"]) == ["data/a/y.JSON", "data/a/z.parquet", "data/b.csv", "data/c.jsonl"]
    assert expand_sources(["./data"]) == expand_sources(["data"])


def test_a_repository_root_yields_its_datasets_not_its_json_configs(repo: Path) -> None:
    """package.json, a baseline and a config are JSON objects, not datasets (arrays of records)."""
    (repo / "package.json").write_text('{"name": "app", "version": "1.0.0"}\n')
    (repo / "tsconfig.json").write_bytes(b"\xef\xbb\xbf  \n{}")
    (repo / "persona-lint-baseline.json").write_text('{"version": 1, "findings": []}')
    write(repo / "node_modules" / "pkg" / "fixtures.jsonl", RECORD)
    write(repo / "data" / "train.jsonl", RECORD)
    (repo / "data" / "eval.json").write_text("\n  " + json.dumps([RECORD]))
    assert expand_sources(["."]) == ["data/eval.json", "data/train.jsonl"]
    assert scan_dataset(["."]).sizes == {"data/eval.json": 1, "data/train.jsonl": 1}
    with pytest.raises(InputError, match="not a dataset"):  # named on its own, it is still checked
        scan_dataset(["package.json"])


def test_folder_files_are_read_as_if_given_one_by_one(repo: Path) -> None:
    write(repo / "data" / "sub" / "b.jsonl", RECORD, RECORD)
    write(repo / "data" / "a.jsonl", {"prompt": "Q", "response": "A"})
    scan = scan_dataset(["data"])
    assert scan.sizes == {"data/a.jsonl": 1, "data/sub/b.jsonl": 2}
    one_by_one = scan_dataset(["data/a.jsonl", "data/sub/b.jsonl"])
    assert scan.inputs == one_by_one.inputs
    assert [item.location for item in iter_dataset(["data"])] == [
        "data/a.jsonl:1",
        "data/sub/b.jsonl:1",
        "data/sub/b.jsonl:2",
    ]


def test_a_file_named_twice_is_read_once(repo: Path) -> None:
    write(repo / "data" / "a.jsonl", RECORD)
    assert expand_sources(["data", "./data/a.jsonl", "data/a.jsonl"]) == ["data/a.jsonl"]


def test_saved_dataset_inside_a_folder_is_one_source(repo: Path) -> None:
    datasets = pytest.importorskip("datasets")
    write(repo / "data" / "a.jsonl", RECORD)
    datasets.Dataset.from_list([RECORD, RECORD]).save_to_disk(str(repo / "data" / "saved"))
    assert expand_sources(["data"]) == ["data/a.jsonl", "data/saved"]
    assert scan_dataset(["data"]).sizes == {"data/a.jsonl": 1, "data/saved": 2}
    assert expand_sources(["data/saved"]) == ["data/saved"]  # not expanded into its own files


def test_empty_folder_is_an_error_listing_the_extensions(repo: Path) -> None:
    (repo / "data" / ".cache").mkdir(parents=True)
    (repo / "data" / "README.md").write_text("no data here")
    (repo / "data" / ".cache" / "x.jsonl").write_text(json.dumps(RECORD))
    with pytest.raises(InputError) as caught:
        expand_sources(["data"])
    assert caught.value.path == "data"
    assert caught.value.problem.startswith("no dataset files found in this folder")
    for suffix in (".jsonl", ".json", ".csv", ".parquet"):
        assert suffix in caught.value.problem


def test_symlink_loop_is_walked_once(repo: Path) -> None:
    write(repo / "data" / "a.jsonl", RECORD)
    (repo / "data" / "loop").symlink_to(repo / "data", target_is_directory=True)
    assert expand_sources(["data"]) == ["data/a.jsonl"]


# --- '-' reads JSONL from standard input -------------------------------------------------------


def test_stdin_is_read_once_and_scanned_hashed_and_streamed(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (json.dumps(RECORD) + "\n" + json.dumps({"prompt": "Q", "response": "A"}) + "\n").encode()
    stdin_of(data, monkeypatch)
    scan = scan_dataset(["-"])
    assert scan.sizes == {"<stdin>": 2}
    assert scan.inputs[0].path == "<stdin>"
    assert scan.inputs[0].sha256 == hashlib.sha256(data).hexdigest()
    # The second read (the screening pass) sees the same samples, although stdin is consumed.
    samples = [item for item in iter_dataset(["-"]) if isinstance(item, Sample)]
    assert [(s.location, s.response) for s in samples] == [("<stdin>:1", "Hello!"), ("<stdin>:2", "A")]


def test_stdin_errors_name_stdin_and_the_line(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stdin_of(b'{"prompt": "Hi", "response": "Hello!"}\n{"prompt": "Hi"\n', monkeypatch)
    with pytest.raises(InputError) as caught:
        list(iter_dataset(["-"]))
    assert str(caught.value).startswith("<stdin>:2: invalid JSON")
    items = list(iter_dataset(["-"], skip_invalid=True))
    assert isinstance(items[1], InvalidRecord) and (items[1].source, items[1].line) == ("<stdin>", 2)


def test_stdin_from_a_terminal_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    with pytest.raises(InputError) as caught:
        locate("-")
    assert caught.value.path == "<stdin>"
    assert "cat train.jsonl | persona-lint -" in (caught.value.fix or "")


def test_an_unreadable_subfolder_is_an_input_error(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(repo / "data" / "a.jsonl", RECORD)
    (repo / "data" / "locked").mkdir()
    listing = Path.iterdir

    def iterdir(folder: Path) -> Any:  # as for a folder without read permission (root reads any)
        if folder.name == "locked":
            raise PermissionError(13, "Permission denied")
        return listing(folder)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(InputError) as caught:
        expand_sources(["data"])
    assert caught.value.path == "data/locked"
    assert caught.value.problem == "can't list the folder (Permission denied)"
