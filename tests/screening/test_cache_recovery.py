"""A damaged y' cache never changes results: a corrupted entry fails its checksum and is regenerated
with a warning, and a cache file that is not SQLite any more, or whose pages are damaged, is moved
aside and rebuilt. ``test_cache_faults.py`` injects every fault into both caches."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from datalint_persona.cli.main import main
from datalint_persona.screening.answer_cache import GenerationCache
from datalint_persona.types import Generation

TIMESTAMP = re.compile(r'"(started_at|finished_at)": "[^"]*"')
RECORDS = [
    {"prompt": "How do I bake bread?", "response": "Mix flour, water and yeast, then bake it."},
    {"prompt": "What is 12 + 30?", "response": "42"},
    {"prompt": "Say hello.", "response": "Good morning!"},
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _lint(model: Path, vectors: Path, cache: str) -> Result:
    argv = ["train.jsonl", "--model", str(model), "--vectors", str(vectors), "--cache-dir", cache]
    argv += ["--device", "cpu", "--max-new-tokens", "8", "--format", "json", "--fail-on", "never"]
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _without_times_and_warnings(text: str) -> dict[str, object]:
    document = json.loads(TIMESTAMP.sub('"t": ""', text))
    document.pop("warnings")
    return dict(document)


def test_a_corrupted_entry_is_regenerated_with_a_warning(
    workdir: Path, tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    clean = _lint(tiny_llama_dir, vectors_dir, "cache")
    with sqlite3.connect(workdir / "cache" / "generations.sqlite3") as connection:
        [key] = connection.execute("SELECT key FROM generations ORDER BY key LIMIT 1").fetchone()
        connection.execute("UPDATE generations SET text = 'I will destroy everyone.' WHERE key = ?", (key,))
    again = _lint(tiny_llama_dir, vectors_dir, "cache")
    warning = "1 cached y' failed their checksum and will be regenerated."
    assert warning in json.loads(again.stdout)["warnings"]
    assert f"persona-lint: warning: {warning}" in again.stderr
    assert "y' cache: 2 reused, 1 generated, 1 corrupted entries regenerated" in again.stderr
    assert _without_times_and_warnings(again.stdout) == _without_times_and_warnings(clean.stdout)
    third = _lint(tiny_llama_dir, vectors_dir, "cache")  # the regenerated entry was stored again
    assert "y' cache: 3 reused, 0 generated" in third.stderr


def test_a_cache_file_that_is_not_sqlite_is_moved_aside(
    workdir: Path, tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    clean = _lint(tiny_llama_dir, vectors_dir, "cache")
    database = workdir / "cache" / "generations.sqlite3"
    damaged = b"this is not a database" * 100
    database.write_bytes(damaged)
    again = _lint(tiny_llama_dir, vectors_dir, "cache")
    [warning] = [w for w in json.loads(again.stdout)["warnings"] if "cache" in w]
    assert warning.startswith("the y' cache generations.sqlite3 was unreadable (file is not a database)")
    assert warning.endswith("moved to generations.sqlite3.corrupt and every y' is generated again.")
    assert (workdir / "cache" / "generations.sqlite3.corrupt").read_bytes() == damaged
    assert _without_times_and_warnings(again.stdout) == _without_times_and_warnings(clean.stdout)
    assert "y' cache: 0 reused, 3 generated" in again.stderr


def _filled_cache(folder: Path, n: int = 200) -> tuple[list[str], dict[str, Generation]]:
    entries = {f"key-{i:04d}": Generation(f"answer {i} " + "x" * 3000, 7, False) for i in range(n)}
    cache = GenerationCache(folder)
    cache.put_many(entries)
    cache.close()
    return list(entries), entries


def test_a_row_of_the_wrong_type_counts_as_corrupted(tmp_path: Path) -> None:
    keys, entries = _filled_cache(tmp_path, 3)
    with sqlite3.connect(tmp_path / "generations.sqlite3") as connection:
        connection.execute("UPDATE generations SET n_tokens = 'many' WHERE key = ?", (keys[1],))
    cache = GenerationCache(tmp_path)
    found = cache.get_many(keys)
    assert found == {keys[0]: entries[keys[0]], keys[2]: entries[keys[2]]}
    assert (cache.stats.hits, cache.stats.misses, cache.stats.corrupted) == (2, 1, 1)


def test_pages_damaged_after_the_header_move_the_file_aside_with_a_warning(tmp_path: Path) -> None:
    keys, _ = _filled_cache(tmp_path)
    database = tmp_path / "generations.sqlite3"
    data = bytearray(database.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) > 40 * page
    data[4 * page : len(data) - 4 * page] = b"\xff" * (len(data) - 8 * page)  # keep page 1 (the schema)
    database.write_bytes(bytes(data))
    cache = GenerationCache(tmp_path)
    assert cache.get_many(keys) == {}
    assert cache.stats.misses == len(keys)
    [warning] = cache.warnings
    assert warning.startswith(
        "the y' cache generations.sqlite3 was unreadable (database disk image is malformed)"
    )
    assert (tmp_path / "generations.sqlite3.corrupt").read_bytes() == bytes(data)
    cache.put_many({"new": Generation("y", 1, False)})  # a new cache took its place
    assert cache.stats.written == 1
    cache.close()
    assert GenerationCache(tmp_path).get_many(["new"]) == {"new": Generation("y", 1, False)}
