"""Fault injection into both caches (y' and projections): each faulty run completes with the
results of a clean run, plus a warning naming what happened.

A warm cache folder is built once; each case copies it, injects one fault into one cache file
(a truncated file, a damaged page, a row of the wrong type, a row whose checksum fails, a
database another process holds locked, a folder that can't be written) and screens again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from datalint_persona.run_records import ScreenResult
from datalint_persona.screening import cache_file
from datalint_persona.screening.engine import screen
from screening.test_engine import RECORDS, _options, write_jsonl

FILES = {"y'": ("generations.sqlite3", "generations"), "projection": ("projections.sqlite3", "projections")}


@pytest.fixture(scope="module")
def warm(
    tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path, vectors_dir: Path
) -> tuple[Path, ScreenResult]:
    """A dataset, its warm cache folder, and the result of screening it without any cache."""
    folder = tmp_path_factory.mktemp("faults")
    write_jsonl(folder / "train.jsonl", RECORDS)
    options = _options(tiny_llama_dir, vectors_dir, folder, max_new_tokens=6, batch_size=2)
    screen([str(folder / "train.jsonl")], options)  # fills folder/cache
    clean = screen([str(folder / "train.jsonl")], options, cache_dir=None)
    return folder, clean


def _results(result: ScreenResult) -> list[tuple[object, ...]]:
    return [
        (
            s.index,
            s.y_prime,
            s.y_prime_hit_token_limit,
            s.truncated,
            *((t.projection_y, t.projection_y_prime) for t in s.scores),
        )
        for s in result.samples
    ]


def _same_results(faulty: ScreenResult, clean: ScreenResult) -> None:
    """Equal y', flags and findings; projections equal up to the float rounding of other batches."""
    got, want = _results(faulty), _results(clean)
    assert [row[:4] for row in got] == [row[:4] for row in want]
    for row_got, row_want in zip(got, want, strict=True):
        for (y, y_prime), (y_want, y_prime_want) in zip(row_got[4:], row_want[4:], strict=True):  # type: ignore[misc]
            assert abs(y - y_want) < 1e-5 and abs(y_prime - y_prime_want) < 1e-5
    assert [(f.rule_id, f.level, f.source, f.line) for f in faulty.findings] == [
        (f.rule_id, f.level, f.source, f.line) for f in clean.findings
    ]


def _page_size(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[16:18], "big")


def _truncate(path: Path) -> None:
    """Keep the first page only (the schema): every row's page is gone."""
    data = path.read_bytes()
    assert len(data) > _page_size(path)
    path.write_bytes(data[: _page_size(path)])


def _damage_pages(path: Path) -> None:
    page = _page_size(path)
    data = bytearray(path.read_bytes())
    data[page:] = b"\xff" * (len(data) - page)
    path.write_bytes(bytes(data))


def _wrong_type(path: Path) -> None:
    column = "n_tokens" if path.name.startswith("generations") else "value"
    table = path.stem.split(".")[0]
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(f"UPDATE {table} SET {column} = 'many' WHERE rowid = 1")


def _wrong_checksum(path: Path) -> None:
    table = path.stem.split(".")[0]
    change = "text = text || ' and more'" if table == "generations" else "value = value + 1"
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(f"UPDATE {table} SET {change} WHERE rowid = 1")


FAULTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, "was unreadable (database disk image is malformed); it was moved to"),
    "damaged page": (_damage_pages, "was unreadable ("),
    "wrong type": (_wrong_type, "failed their checksum"),
    "wrong checksum": (_wrong_checksum, "failed their checksum"),
}


@pytest.fixture
def cache_copy(warm: tuple[Path, ScreenResult], tmp_path: Path) -> Path:
    shutil.copytree(warm[0] / "cache", tmp_path / "cache")
    return tmp_path / "cache"


def _screen(
    warm: tuple[Path, ScreenResult], cache: Path, tiny_llama_dir: Path, vectors_dir: Path
) -> ScreenResult:
    folder, _ = warm
    options = _options(tiny_llama_dir, vectors_dir, folder, max_new_tokens=6, batch_size=2)
    return screen([str(folder / "train.jsonl")], options, cache_dir=str(cache))


@pytest.mark.parametrize("which", list(FILES))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_faulty_cache_file_gives_the_clean_results_and_a_warning(
    warm: tuple[Path, ScreenResult],
    cache_copy: Path,
    which: str,
    fault: str,
    tiny_llama_dir: Path,
    vectors_dir: Path,
) -> None:
    inject, expected = FAULTS[fault]
    name, _ = FILES[which]
    inject(cache_copy / name)
    result = _screen(warm, cache_copy, tiny_llama_dir, vectors_dir)
    _same_results(result, warm[1])
    found = [w for w in result.warnings if expected in w]
    assert found, result.warnings
    if fault in ("truncated", "damaged page"):
        assert found[0].startswith(f"the {which} cache {name} was unreadable")
        assert (cache_copy / f"{name}.corrupt").is_file()
    else:
        assert found[0].startswith("1 cached")
    # The repaired cache serves the next run whole.
    again = _screen(warm, cache_copy, tiny_llama_dir, vectors_dir)
    _same_results(again, warm[1])
    assert not [w for w in again.warnings if "cache" in w]
    assert again.cache_stats["hits"] == len(RECORDS)
    assert again.cache_stats["projections_reused"] == 2 * len(RECORDS)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Another connection holds an exclusive lock on the file (another process writing, stuck)."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


@pytest.mark.parametrize("which", list(FILES))
def test_a_locked_cache_is_left_alone_with_a_warning(
    warm: tuple[Path, ScreenResult],
    cache_copy: Path,
    which: str,
    tiny_llama_dir: Path,
    vectors_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache_file, "LOCK_TIMEOUT_S", 0.2)
    name, _ = FILES[which]
    before = (cache_copy / name).read_bytes()
    with _locked(cache_copy / name):
        result = _screen(warm, cache_copy, tiny_llama_dir, vectors_dir)
    _same_results(result, warm[1])
    [warning] = [w for w in result.warnings if "locked" in w]
    assert warning.startswith(f"the {which} cache {name} is locked by another process (database is locked)")
    assert "goes on without it" in warning
    assert (cache_copy / name).read_bytes() == before  # not moved aside, not written
    assert not list(cache_copy.glob("*.corrupt"))


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """A folder nobody can create files in: the immutable flag for root, else no write permission."""
    if os.geteuid() == 0:
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        made, undo = True, ["chmod", "755", str(folder)]
    try:
        probe = folder / "probe"
        try:
            probe.touch()
        except OSError:
            pass
        else:
            probe.unlink()
            made = False
        if not made:
            pytest.skip("can't make a read-only folder here")
        yield
    finally:
        subprocess.run(undo, check=False)


def test_a_read_only_cache_folder_is_read_with_a_warning(
    warm: tuple[Path, ScreenResult], cache_copy: Path, tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    # Half of each cache is missing, so the run has work to do and nowhere to store it.
    for name, table in FILES.values():
        with contextlib.closing(sqlite3.connect(cache_copy / name)) as connection, connection:
            connection.execute(f"DELETE FROM {table} WHERE rowid % 2 = 0")
    before = {p.name: p.read_bytes() for p in cache_copy.iterdir()}
    with _read_only(cache_copy):
        result = _screen(warm, cache_copy, tiny_llama_dir, vectors_dir)
    _same_results(result, warm[1])
    for which, (name, _) in FILES.items():
        [warning] = [w for w in result.warnings if w.startswith(f"the {which} cache {name}")]
        assert "can't be written" in warning and "reads it but stores nothing new" in warning
    assert 0 < result.cache_stats["hits"] < len(RECORDS)
    assert 0 < result.cache_stats["projections_reused"] < 2 * len(RECORDS)
    assert {p.name: p.read_bytes() for p in cache_copy.iterdir()} == before


def test_a_read_only_empty_folder_turns_the_caches_off_with_a_warning(
    warm: tuple[Path, ScreenResult], tmp_path: Path, tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    with _read_only(empty):
        result = _screen(warm, empty, tiny_llama_dir, vectors_dir)
    _same_results(result, warm[1])
    for which, (name, _) in FILES.items():
        [warning] = [w for w in result.warnings if w.startswith(f"the {which} cache {name}")]
        assert "can't be created" in warning and "goes on without it" in warning
    assert list(empty.iterdir()) == []
