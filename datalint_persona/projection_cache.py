"""An on-disk cache of per-sample projections, so an unchanged (x, y) is not scored again.

A row holds the projection of one (model, max_tokens, prompt, response) onto one unit vector
(keyed by its layer and the sha256 of its float64 bytes), plus whether the pair was truncated.
It sits next to the y' cache (``projections.sqlite3`` in the same folder), uses the same SQLite
transactions, and every row carries a checksum that is verified on read.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from datalint_persona.cache import open_cache_database
from datalint_persona.errors import PersonaLintError
from datalint_persona.types import Message

DATABASE_NAME = "projections.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS projections (
    pair TEXT NOT NULL,
    direction TEXT NOT NULL,
    value REAL NOT NULL,
    truncated INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (pair, direction)
)
"""


def pair_key(model_identity: str, max_tokens: int, prompt: Sequence[Message], response: str) -> str:
    """The cache key of one scored (x, y)."""
    payload = json.dumps(
        [model_identity, max_tokens, [[m.role, m.content] for m in prompt], response],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _checksum(pair: str, direction: str, value: float, truncated: bool) -> str:
    payload = pair.encode() + direction.encode() + struct.pack("<d?", value, truncated)
    return hashlib.sha256(payload).hexdigest()[:32]


class ProjectionCache:
    """``get_many`` / ``put_many``; ``None`` as the directory disables it (everything misses)."""

    def __init__(self, directory: str | Path | None) -> None:
        self.hits = 0
        self.misses = 0
        self.corrupted = 0
        self.warnings: list[str] = []
        self._connection: sqlite3.Connection | None = None
        if directory is None:
            return
        folder = Path(directory)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise PersonaLintError(
                f"Cache folder {folder}: can't open the projection cache ({error}).",
                fix="pass a writable --cache-dir, or --no-cache.",
            ) from error
        self._connection, warning = open_cache_database(
            folder,
            DATABASE_NAME,
            _SCHEMA,
            what="projection cache",
            consequence="every sample is scored again",
        )
        if warning:
            self.warnings.append(warning)

    def get_many(
        self, pairs: Iterable[str], directions: Sequence[str]
    ) -> dict[str, tuple[list[float], bool]]:
        """``{pair: (values in ``directions`` order, truncated)}`` for pairs cached for every direction."""
        wanted = list(dict.fromkeys(pairs))
        found: dict[str, tuple[list[float], bool]] = {}
        if self._connection is None or not directions:
            self.misses += len(wanted)
            return found
        rows: dict[str, dict[str, tuple[float, bool]]] = {}
        bad: list[tuple[str, str]] = []
        marks_d = ",".join("?" * len(directions))
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            marks = ",".join("?" * len(chunk))
            query = (
                "SELECT pair, direction, value, truncated, checksum FROM projections "
                f"WHERE pair IN ({marks}) AND direction IN ({marks_d})"
            )
            for pair, direction, value, truncated, checksum in self._connection.execute(
                query, [*chunk, *directions]
            ):
                if _checksum(pair, direction, float(value), bool(truncated)) != checksum:
                    bad.append((pair, direction))
                    continue
                rows.setdefault(pair, {})[direction] = (float(value), bool(truncated))
        if bad:
            self.corrupted += len(bad)
            with self._connection:
                self._connection.executemany("DELETE FROM projections WHERE pair = ? AND direction = ?", bad)
        for pair, by_direction in rows.items():
            if all(d in by_direction for d in directions):
                found[pair] = ([by_direction[d][0] for d in directions], by_direction[directions[0]][1])
        self.hits += len(found)
        self.misses += len(wanted) - len(found)
        return found

    def put_many(
        self, entries: Mapping[str, tuple[Sequence[float], bool]], directions: Sequence[str]
    ) -> None:
        """Store ``{pair: (values in ``directions`` order, truncated)}`` in one transaction."""
        if self._connection is None or not entries:
            return
        rows = [
            (
                pair,
                direction,
                float(value),
                int(truncated),
                _checksum(pair, direction, float(value), truncated),
            )
            for pair, (values, truncated) in entries.items()
            for direction, value in zip(directions, values, strict=True)
        ]
        with self._connection:
            self._connection.executemany("INSERT OR REPLACE INTO projections VALUES (?, ?, ?, ?, ?)", rows)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
