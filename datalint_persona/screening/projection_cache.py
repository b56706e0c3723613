"""An on-disk cache of per-sample projections, so an unchanged (x, y) is not scored again.

A row holds the projection of one (model, max_tokens, prompt, response) onto one unit vector
(keyed by its layer and the sha256 of its float64 bytes), plus whether the pair was truncated.
It sits next to the y' cache (``projections.sqlite3`` in the same folder), shares its SQLite
transactions and recovery path (:mod:`datalint_persona.screening.cache_file`), and every row carries a
checksum that is verified on read.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from datalint_persona.screening.cache_file import CacheStats, CacheTable
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


def pair_scope(model_identity: str, chat_template_sha256: str) -> str:
    """What :func:`pair_key` takes as the model: the weights' identity and the chat template's
    hash (the template decides the scored tokens, so the weights' hash is not enough).

    >>> pair_scope("sha256:ab", "cd")
    'sha256:ab|cd'
    """
    return f"{model_identity}|{chat_template_sha256}"


def pair_key(model_identity: str, max_tokens: int, prompt: Sequence[Message], response: str) -> str:
    """The cache key of one scored (x, y); ``model_identity`` is a :func:`pair_scope`."""
    payload = json.dumps(
        [model_identity, max_tokens, [[m.role, m.content] for m in prompt], response],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _checksum(pair: str, direction: str, value: float, truncated: bool) -> str:
    payload = pair.encode() + direction.encode() + struct.pack("<d?", value, truncated)
    return hashlib.sha256(payload).hexdigest()[:32]


class ProjectionCache(CacheTable):
    """``get_many`` / ``put_many``; ``None`` as the directory disables it (everything misses).

    ``scope`` is mixed into every key: what the projections depend on beyond the key a caller
    builds (the device, the dtype, the tokenizer and configs; see
    :func:`datalint_persona.screening.cache_identity.cache_identity`). Damage never changes results (see
    :mod:`datalint_persona.screening.cache_file`): a row that fails its checksum or does not convert is
    dropped and scored again, a damaged file is moved aside, and a file that can't be used is left
    alone; each with a warning.
    """

    def __init__(self, directory: str | Path | None, *, scope: str = "") -> None:
        super().__init__(
            directory,
            DATABASE_NAME,
            _SCHEMA,
            what="projection cache",
            consequence="every sample is scored again",
        )
        self.stats = CacheStats()
        self.scope = scope

    def _stored(self, pair: str) -> str:
        if not self.scope:
            return pair
        return hashlib.sha256(f"{self.scope}\0{pair}".encode()).hexdigest()

    def get_many(
        self, pairs: Iterable[str], directions: Sequence[str]
    ) -> dict[str, tuple[list[float], bool]]:
        """``{pair: (values in ``directions`` order, truncated)}`` for pairs cached for every direction."""
        wanted = list(dict.fromkeys(pairs))
        found: dict[str, tuple[list[float], bool]] = {}
        stored = {self._stored(pair): pair for pair in wanted}
        read = (
            self._file.read(lambda connection: _read(connection, list(stored), directions))
            if self._file is not None and directions
            else None
        )
        rows, bad = read if read is not None else ({}, [])
        if bad and self._file is not None:
            self._file.write(
                lambda connection: connection.executemany(
                    "DELETE FROM projections WHERE pair = ? AND direction = ?", bad
                )
            )
            damaged = len({pair for pair, _ in bad})  # counted per pair, as hits and misses are
            self.stats.corrupted += damaged
            self._warnings.append(f"{damaged} cached pair(s) failed their checksum and were scored again.")
        for key, by_direction in rows.items():
            if all(d in by_direction for d in directions):
                values = [by_direction[d][0] for d in directions]
                found[stored[key]] = (values, by_direction[directions[0]][1])
        self.stats.hits += len(found)
        self.stats.misses += len(wanted) - len(found)
        return found

    def put_many(
        self, entries: Mapping[str, tuple[Sequence[float], bool]], directions: Sequence[str]
    ) -> None:
        """Store ``{pair: (values in ``directions`` order, truncated)}`` in one transaction."""
        if self._file is None or not entries:
            return
        rows = []
        for pair, (values, truncated) in entries.items():
            key = self._stored(pair)
            for direction, value in zip(directions, values, strict=True):
                checksum = _checksum(key, direction, float(value), truncated)
                rows.append((key, direction, float(value), int(truncated), checksum))
        if self._file.write(
            lambda connection: connection.executemany(
                "INSERT OR REPLACE INTO projections VALUES (?, ?, ?, ?, ?)", rows
            )
        ):
            self.stats.written += len(entries)


def _read(
    connection: sqlite3.Connection, keys: list[str], directions: Sequence[str]
) -> tuple[dict[str, dict[str, tuple[float, bool]]], list[tuple[str, str]]]:
    """``{stored key: {direction: (value, truncated)}}`` of the rows that pass their checksum, and
    the (key, direction) of those that fail it or do not convert."""
    rows: dict[str, dict[str, tuple[float, bool]]] = {}
    bad: list[tuple[str, str]] = []
    marks_d = ",".join("?" * len(directions))
    for start in range(0, len(keys), 400):
        chunk = keys[start : start + 400]
        marks = ",".join("?" * len(chunk))
        query = (
            "SELECT pair, direction, value, truncated, checksum FROM projections "
            f"WHERE pair IN ({marks}) AND direction IN ({marks_d})"
        )
        for pair, direction, value, truncated, checksum in connection.execute(query, [*chunk, *directions]):
            # SQLite keeps whatever type was written, so a damaged row may not even convert.
            if not (isinstance(value, float | int) and isinstance(truncated, int)):
                bad.append((pair, direction))
                continue
            if _checksum(pair, direction, float(value), bool(truncated)) != checksum:
                bad.append((pair, direction))
                continue
            rows.setdefault(pair, {})[direction] = (float(value), bool(truncated))
    return rows, bad
