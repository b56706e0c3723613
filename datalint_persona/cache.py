"""An on-disk cache of generated y', keyed by model identity, rendered prompt and settings.

SQLite gives atomic, crash-safe commits: a run killed with SIGKILL loses at most the batch it was
writing, and the next run resumes from what was committed. Each entry carries a checksum that is
verified on read; a corrupted entry is dropped, reported, and regenerated.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from datalint_persona.errors import PersonaLintError
from datalint_persona.types import Generation

DEFAULT_CACHE_DIR = ".persona-lint-cache"
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


def _open(database: Path, schema: str) -> sqlite3.Connection:
    connection = sqlite3.connect(database, timeout=30)
    try:
        connection.execute(schema)
        connection.commit()
    except sqlite3.Error:
        connection.close()
        raise
    return connection


def open_cache_database(
    folder: Path, name: str, schema: str, *, what: str, consequence: str
) -> tuple[sqlite3.Connection, str | None]:
    """Open (or create) the SQLite cache ``folder/name`` with ``schema``; also a warning, or None.

    A file that is no longer SQLite (truncated, overwritten) is kept for inspection under a
    ``.corrupt`` name and a new cache is started; the warning says so, naming ``what`` was lost
    and the ``consequence``. A cache that cannot be opened at all is an error.
    """
    database = folder / name
    try:
        return _open(database, schema), None
    except sqlite3.DatabaseError as error:
        if isinstance(error, sqlite3.OperationalError) or not database.is_file():
            raise _unusable(folder, error) from error
        aside = _free_name(database.with_name(name + ".corrupt"))
        database.rename(aside)
        warning = (
            f"the {what} {name} was unreadable ({error}); it was moved to {aside.name} and {consequence}."
        )
        try:
            return _open(database, schema), warning
        except sqlite3.Error as again:
            raise _unusable(folder, again) from again


def _unusable(folder: Path, error: Exception) -> PersonaLintError:
    return PersonaLintError(
        f"Cache folder {folder}: can't open the cache ({error}).",
        fix="pass a writable --cache-dir, or --no-cache.",
    )


def _free_name(path: Path) -> Path:
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupted: int = 0
    written: int = 0


class GenerationCache:
    """``get_many`` / ``put_many`` over a SQLite file in ``directory``; ``None`` disables caching."""

    def __init__(self, directory: str | Path | None) -> None:
        self.stats = CacheStats()
        self.warnings: list[str] = []
        self._connection: sqlite3.Connection | None = None
        if directory is None:
            return
        folder = Path(directory)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            ignore = folder / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# Created by persona-lint.\n*\n", encoding="utf-8")
        except OSError as error:
            raise _unusable(folder, error) from error
        self._connection, warning = open_cache_database(
            folder, DATABASE_NAME, _SCHEMA, what="y' cache", consequence="every y' is generated again"
        )
        if warning:
            self.warnings.append(warning)

    def get_many(self, keys: Iterable[str]) -> dict[str, Generation]:
        found: dict[str, Generation] = {}
        wanted = list(keys)
        if self._connection is None:
            self.stats.misses += len(wanted)
            return found
        try:
            found, corrupted = self._read(self._connection, wanted)
            if corrupted:
                self._connection.executemany(
                    "DELETE FROM generations WHERE key = ?", [(k,) for k in corrupted]
                )
                self._connection.commit()
        except sqlite3.DatabaseError as error:  # damage that only shows when pages are read
            self._give_up(error)
            found, corrupted = {}, []
        if corrupted:
            self.stats.corrupted += len(corrupted)
            self.warnings.append(f"{len(corrupted)} cached y' failed their checksum and will be regenerated.")
        self.stats.hits += len(found)
        self.stats.misses += len(wanted) - len(found)
        return found

    @staticmethod
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
                try:  # SQLite keeps whatever type was written, so a damaged row may not even convert
                    generation = Generation(str(text), int(n_tokens), bool(hit_limit))
                except (TypeError, ValueError):
                    corrupted.append(key)
                    continue
                if _checksum(key, generation) == checksum:
                    found[key] = generation
                else:
                    corrupted.append(key)
        return found, corrupted

    def put_many(self, entries: Mapping[str, Generation]) -> None:
        """Store a batch in one transaction (all of it is committed, or none)."""
        if self._connection is None or not entries:
            return
        try:
            with self._connection:
                self._connection.executemany(
                    "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?)",
                    [
                        (key, g.text, g.n_tokens, int(g.hit_token_limit), _checksum(key, g))
                        for key, g in entries.items()
                    ],
                )
        except sqlite3.IntegrityError:
            raise  # a bad entry is a bug in the caller, not damage to the file
        except sqlite3.DatabaseError as error:
            self._give_up(error)
            return
        self.stats.written += len(entries)

    def _give_up(self, error: sqlite3.DatabaseError) -> None:
        """Stop using a cache that turned out damaged mid-run: results are computed, not cached."""
        self.warnings.append(
            f"the y' cache is damaged ({error}); this run goes on without it. "
            "Delete the cache folder to rebuild it."
        )
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
