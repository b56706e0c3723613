"""An on-disk cache of generated y', keyed by model identity, rendered prompt and settings.

SQLite gives atomic, crash-safe commits: a run killed with SIGKILL loses at most the batch it was
writing, and the next run resumes from what was committed. Each entry carries a checksum that is
verified on read; a corrupted entry is dropped, reported, and regenerated. What happens to a
damaged, locked or read-only file is in :mod:`datalint_persona.screening.cache_file`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

from datalint_persona.screening.cache_file import CacheStats, CacheTable
from datalint_persona.types import Generation

DATABASE_NAME = "generations.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    n_tokens INTEGER NOT NULL,
    hit_token_limit INTEGER NOT NULL,
    checksum TEXT NOT NULL
)
"""


def generation_key(
    model_identity: str, backend: str, rendered_prompt: str, settings: Mapping[str, object]
) -> str:
    """The cache key of one y'.

    >>> generation_key("sha256:ab", "transformers", "hi", {"max_new_tokens": 8})[:8]
    '232d818f'
    """
    payload = json.dumps(
        [model_identity, backend, rendered_prompt, dict(sorted(settings.items()))],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _checksum(key: str, generation: Generation) -> str:
    payload = json.dumps(
        [key, generation.text, generation.n_tokens, generation.hit_token_limit], ensure_ascii=False
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class GenerationCache(CacheTable):
    """``get_many`` / ``put_many`` over a SQLite file in ``directory``; ``None`` disables caching.

    Damage never changes what a run computes (see :mod:`datalint_persona.screening.cache_file`): an entry
    that fails its checksum or does not convert is dropped and generated again, a damaged file is
    moved aside, and a file that can't be used is left alone; each with a warning.
    """

    def __init__(self, directory: str | Path | None) -> None:
        super().__init__(
            directory, DATABASE_NAME, _SCHEMA, what="y' cache", consequence="every y' is generated again"
        )
        self.stats = CacheStats()
        if directory is None or self._file is None:
            return
        ignore = Path(directory) / ".gitignore"
        if self._file.is_open and not ignore.exists():
            with contextlib.suppress(OSError):  # a read-only cache folder is still read
                ignore.write_text("# Created by persona-lint.\n*\n", encoding="utf-8")

    def get_many(self, keys: Iterable[str]) -> dict[str, Generation]:
        wanted = list(keys)
        read = self._file.read(lambda connection: _read(connection, wanted)) if self._file else None
        found, corrupted = read if read is not None else ({}, [])
        if corrupted and self._file is not None:
            self._file.write(
                lambda connection: connection.executemany(
                    "DELETE FROM generations WHERE key = ?", [(k,) for k in corrupted]
                )
            )
            self.stats.corrupted += len(corrupted)
            self._warnings.append(
                f"{len(corrupted)} cached y' failed their checksum and will be regenerated."
            )
        self.stats.hits += len(found)
        self.stats.misses += len(wanted) - len(found)
        return found

    def put_many(self, entries: Mapping[str, Generation]) -> None:
        """Store a batch in one transaction (all of it is committed, or none)."""
        if self._file is None or not entries:
            return
        rows = [
            (key, g.text, g.n_tokens, int(g.hit_token_limit), _checksum(key, g)) for key, g in entries.items()
        ]
        if self._file.write(
            lambda connection: connection.executemany(
                "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?)", rows
            )
        ):
            self.stats.written += len(entries)


def _read(connection: sqlite3.Connection, wanted: list[str]) -> tuple[dict[str, Generation], list[str]]:
    """The entries found for ``wanted`` that pass their checksum, and the keys of those that fail."""
    found: dict[str, Generation] = {}
    corrupted: list[str] = []
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = connection.execute(
            f"SELECT key, text, n_tokens, hit_token_limit, checksum FROM generations WHERE key IN ({marks})",
            chunk,
        ).fetchall()
        for key, text, n_tokens, hit_limit, checksum in rows:
            # SQLite keeps whatever type was written, so a damaged row may not even convert.
            if not (isinstance(text, str) and isinstance(n_tokens, int) and isinstance(hit_limit, int)):
                corrupted.append(key)
                continue
            generation = Generation(text, n_tokens, bool(hit_limit))
            if _checksum(key, generation) == checksum:
                found[key] = generation
            else:
                corrupted.append(key)
    return found, corrupted
