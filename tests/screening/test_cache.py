"""The SQLite y' cache: keys, checksums, atomic batches, and the disabled cache."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from datalint_persona.screening.answer_cache import GenerationCache, generation_key
from datalint_persona.types import Generation

SETTINGS = {"max_new_tokens": 8, "temperature": 0.0, "top_p": 1.0, "seed": 0}


def test_key_depends_on_every_input_and_not_on_settings_order() -> None:
    base = generation_key("sha256:ab", "transformers", "hi", SETTINGS)
    assert base == generation_key("sha256:ab", "transformers", "hi", dict(reversed(list(SETTINGS.items()))))
    assert (
        len(
            {
                base,
                generation_key("sha256:cd", "transformers", "hi", SETTINGS),
                generation_key("sha256:ab", "vllm", "hi", SETTINGS),
                generation_key("sha256:ab", "transformers", "hi ", SETTINGS),
                generation_key("sha256:ab", "transformers", "hi", {**SETTINGS, "max_new_tokens": 9}),
                generation_key("sha256:ab", "transformers", "hi", {**SETTINGS, "seed": 1}),
            }
        )
        == 6
    )


def test_round_trip_across_connections(tmp_path: Path) -> None:
    entries = {
        "k1": Generation("Hello ünïcødé 🙂", 5, False),
        "k2": Generation("", 0, False),
        "k3": Generation("cut off", 8, True),
    }
    cache = GenerationCache(tmp_path / "c")
    cache.put_many(entries)
    assert cache.stats.written == 3
    cache.close()
    reopened = GenerationCache(tmp_path / "c")
    assert reopened.get_many(["k1", "k2", "k3", "missing"]) == entries
    assert (reopened.stats.hits, reopened.stats.misses, reopened.stats.corrupted) == (3, 1, 0)
    reopened.close()


def test_many_keys_are_read_in_chunks(tmp_path: Path) -> None:
    cache = GenerationCache(tmp_path)
    entries = {f"k{i}": Generation(f"t{i}", i, False) for i in range(1234)}
    cache.put_many(entries)
    assert cache.get_many(list(entries)) == entries
    cache.close()


@pytest.mark.parametrize(
    "column, value", [("text", "changed"), ("n_tokens", 99), ("hit_token_limit", 1), ("checksum", "0" * 64)]
)
def test_any_changed_column_fails_the_checksum(tmp_path: Path, column: str, value: object) -> None:
    cache = GenerationCache(tmp_path)
    cache.put_many({"k1": Generation("a", 1, False), "k2": Generation("b", 2, False)})
    cache.close()
    with sqlite3.connect(tmp_path / "generations.sqlite3") as connection:
        connection.execute(f"UPDATE generations SET {column} = ? WHERE key = 'k1'", (value,))
    cache = GenerationCache(tmp_path)
    assert cache.get_many(["k1", "k2"]) == {"k2": Generation("b", 2, False)}
    assert cache.stats.corrupted == 1
    assert cache.warnings == ["1 cached y' failed their checksum and will be regenerated."]
    # The bad row is gone, so the next read is a plain miss.
    assert cache.get_many(["k1"]) == {}
    assert cache.stats.corrupted == 1
    cache.close()


def test_a_failed_batch_writes_nothing(tmp_path: Path) -> None:
    cache = GenerationCache(tmp_path)
    cache.put_many({"k0": Generation("ok", 1, False)})
    # The second row breaks the NOT NULL constraint after the first row was inserted.
    batch = {"k1": Generation("a", 1, False), "k2": Generation(None, 1, False)}  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        cache.put_many(batch)
    cache.close()
    reopened = GenerationCache(tmp_path)
    assert reopened.get_many(["k0", "k1", "k2"]) == {"k0": Generation("ok", 1, False)}
    reopened.close()


def test_none_disables_the_cache(tmp_path: Path) -> None:
    cache = GenerationCache(None)
    cache.put_many({"k": Generation("a", 1, False)})
    assert cache.get_many(["k"]) == {}
    assert cache.stats.misses == 1 and cache.stats.written == 0


def test_a_folder_that_cant_be_made_turns_the_cache_off_with_a_warning(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = GenerationCache(blocker / "cache")
    [warning] = cache.warnings
    assert (
        "can't create its folder" in warning and "goes on without it" in warning and "--no-cache" in warning
    )
    cache.put_many({"k": Generation("a", 1, False)})
    assert cache.get_many(["k"]) == {} and cache.stats.written == 0
