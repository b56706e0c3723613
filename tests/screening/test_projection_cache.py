"""The projection cache: a second scoring of unchanged pairs reads the first one's values, exactly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from datalint_persona.model.loading import LoadedModel
from datalint_persona.screening.projection_cache import ProjectionCache
from datalint_persona.screening.scoring import project_responses
from screening.test_scoring import PROMPTS, RESPONSES, _directions, _numpy_projection


def _score(
    loaded: LoadedModel, folder: Path, responses: list[str], directions: list
) -> tuple[np.ndarray, list[bool], ProjectionCache]:  # type: ignore[type-arg]
    cache = ProjectionCache(folder)
    try:
        values, truncated = project_responses(
            loaded, PROMPTS, responses, directions, max_tokens=45, batch_size=2, cache=cache
        )
    finally:
        cache.close()
    return values, truncated, cache


def test_cached_projections_equal_fresh_ones_and_only_changes_are_scored(
    tiny_llama: LoadedModel, tmp_path: Path
) -> None:
    directions = _directions(tiny_llama)
    responses = list(RESPONSES)
    fresh, fresh_truncated = project_responses(
        tiny_llama, PROMPTS, responses, directions, max_tokens=45, batch_size=2
    )
    first, truncated, cache = _score(tiny_llama, tmp_path, responses, directions)
    assert (cache.stats.hits, cache.stats.misses) == (0, 3)
    np.testing.assert_array_equal(first, fresh)
    assert truncated == fresh_truncated and truncated[1]
    again, truncated_again, cache = _score(tiny_llama, tmp_path, responses, directions)
    assert (cache.stats.hits, cache.stats.misses) == (3, 0)
    np.testing.assert_array_equal(again, first)
    assert truncated_again == truncated
    # One response changed: only that pair misses, and its value is the new response's.
    responses[0] = "Hello there."
    changed, _, cache = _score(tiny_llama, tmp_path, responses, directions)
    assert (cache.stats.hits, cache.stats.misses) == (2, 1)
    np.testing.assert_array_equal(changed[1:], first[1:])
    for k, direction in enumerate(directions):
        assert (
            abs(changed[0, k] - _numpy_projection(tiny_llama, PROMPTS[0], "Hello there.", direction)) < 1e-5
        )
    # Other unit vectors are other keys.
    _, _, cache = _score(tiny_llama, tmp_path, responses, _directions(tiny_llama, seed=1))
    assert cache.stats.misses == 3


def test_a_corrupted_row_is_dropped_and_recomputed(tiny_llama: LoadedModel, tmp_path: Path) -> None:
    directions = _directions(tiny_llama)[:1]
    first, _, _ = _score(tiny_llama, tmp_path, list(RESPONSES), directions)
    with sqlite3.connect(tmp_path / "projections.sqlite3") as connection:
        connection.execute("UPDATE projections SET value = value + 1 WHERE rowid = 1")
    again, _, cache = _score(tiny_llama, tmp_path, list(RESPONSES), directions)
    assert (cache.stats.corrupted, cache.stats.hits, cache.stats.misses) == (1, 2, 1)
    np.testing.assert_allclose(again, first, atol=1e-6, rtol=0)


def test_both_caches_count_entries_the_same_way(tiny_llama: LoadedModel, tmp_path: Path) -> None:
    # Two directions give two rows per pair; hits, misses, corruptions and writes count pairs,
    # as the y' cache counts answers.
    directions = _directions(tiny_llama)[:2]
    _, _, first = _score(tiny_llama, tmp_path, list(RESPONSES), directions)
    assert (first.stats.misses, first.stats.written) == (len(RESPONSES), len(RESPONSES))
    with sqlite3.connect(tmp_path / "projections.sqlite3") as connection:
        (pair,) = connection.execute("SELECT pair FROM projections LIMIT 1").fetchone()
        connection.execute("UPDATE projections SET value = value + 1 WHERE pair = ?", (pair,))
    _, _, again = _score(tiny_llama, tmp_path, list(RESPONSES), directions)
    assert (again.stats.corrupted, again.stats.hits, again.stats.misses, again.stats.written) == (
        1,
        len(RESPONSES) - 1,
        1,
        1,
    )
    assert again.warnings == ["1 cached pair(s) failed their checksum and were scored again."]


def test_another_chat_template_is_another_key(tiny_llama: LoadedModel, tmp_path: Path) -> None:
    directions = _directions(tiny_llama)[:1]
    _score(tiny_llama, tmp_path, list(RESPONSES), directions)
    tokenizer = tiny_llama.tokenizer
    original = tokenizer.chat_template
    try:
        tokenizer.chat_template = str(original) + " "
        _, _, cache = _score(tiny_llama, tmp_path, list(RESPONSES), directions)
    finally:
        tokenizer.chat_template = original
    assert (cache.stats.hits, cache.stats.misses) == (0, 3)


def test_a_projection_cache_that_is_not_sqlite_is_moved_aside_with_a_warning(tmp_path: Path) -> None:
    # The same recovery as the y' cache's (cache.open_cache_database), not a hard error.
    garbage = b"not a database, " * 100
    (tmp_path / "projections.sqlite3").write_bytes(garbage)
    cache = ProjectionCache(tmp_path)
    try:
        assert len(cache.warnings) == 1
        assert "projection cache projections.sqlite3 was unreadable" in cache.warnings[0]
        assert "every sample is scored again" in cache.warnings[0]
        assert (tmp_path / "projections.sqlite3.corrupt").read_bytes() == garbage
        assert cache.get_many(["pair"], ["direction"]) == {}
        cache.put_many({"pair": ([0.5], False)}, ["direction"])
        assert cache.get_many(["pair"], ["direction"]) == {"pair": ([0.5], False)}
    finally:
        cache.close()
