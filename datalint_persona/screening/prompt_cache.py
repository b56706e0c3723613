"""An on-disk cache of prepared prompts: each sample's prompt as cut to its token budget, and as
rendered with the chat template, so that a run whose y' and projections are all cached needs no
tokenizer to find their keys.

A row is keyed by the model's cache scope (which holds the tokenizer and its chat template; see
:func:`~datalint_persona.screening.cache_identity.cache_identity`), the two budgets of
:func:`~datalint_persona.model.chat.fit_prompt` and the prompt's messages. It sits beside the other
caches (``prompts.sqlite3``), and shares their checksums and recovery path
(:mod:`datalint_persona.screening.cache_file`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from datalint_persona.screening.cache_file import CacheTable
from datalint_persona.types import Message

DATABASE_NAME = "prompts.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS prompts (
    key TEXT PRIMARY KEY,
    messages TEXT NOT NULL,
    cut INTEGER NOT NULL,
    rendered TEXT NOT NULL,
    checksum TEXT NOT NULL
)
"""

__all__ = ["PreparedPrompt", "PromptCache", "prompt_key"]


@dataclass(frozen=True)
class PreparedPrompt:
    """A prompt as a run uses it: cut to fit beside y' (``cut`` says whether it was), and rendered
    with the chat template, generation header included."""

    messages: tuple[Message, ...]
    cut: bool
    rendered: str


def prompt_key(scope: str, budget: int, fallback: int, prompt: Sequence[Message]) -> str:
    """The cache key of one prepared prompt.

    >>> prompt_key("scope", 100, 200, [Message("user", "hi")])[:8]
    '957c87e7'
    """
    payload = json.dumps(
        [scope, budget, fallback, [[m.role, m.content] for m in prompt]],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class PromptCache(CacheTable):
    """``get_many`` / ``put_many`` over ``prompts.sqlite3`` in ``directory``; ``None`` disables it.

    An entry that fails its checksum or does not convert is dropped and prepared again, with a
    warning; what happens to a damaged, locked or read-only file is in
    :mod:`datalint_persona.screening.cache_file`.
    """

    def __init__(self, directory: str | Path | None) -> None:
        super().__init__(
            directory,
            DATABASE_NAME,
            _SCHEMA,
            what="prompt cache",
            consequence="the model is loaded to prepare the prompts",
        )

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def get_many(self, keys: Iterable[str]) -> dict[str, PreparedPrompt]:
        wanted = list(dict.fromkeys(keys))
        read = self._file.read(lambda connection: _read(connection, wanted)) if self._file else None
        found, corrupted = read if read is not None else ({}, [])
        if corrupted and self._file is not None:
            self._file.write(
                lambda connection: connection.executemany(
                    "DELETE FROM prompts WHERE key = ?", [(k,) for k in corrupted]
                )
            )
            self._warnings.append(
                f"{len(corrupted)} cached prompt(s) failed their checksum and were prepared again."
            )
        return found

    def put_many(self, entries: Mapping[str, PreparedPrompt]) -> None:
        """Store a batch in one transaction (all of it is committed, or none)."""
        if self._file is None or not entries:
            return
        rows = []
        for key, prepared in entries.items():
            messages = _messages_text(prepared.messages)
            rows.append((key, messages, int(prepared.cut), prepared.rendered, _checksum(key, prepared)))
        self._file.write(
            lambda connection: connection.executemany(
                "INSERT OR REPLACE INTO prompts VALUES (?, ?, ?, ?, ?)", rows
            )
        )


def _messages_text(messages: Sequence[Message]) -> str:
    return json.dumps([[m.role, m.content] for m in messages], ensure_ascii=False)


def _checksum(key: str, prepared: PreparedPrompt) -> str:
    payload = json.dumps(
        [key, _messages_text(prepared.messages), prepared.cut, prepared.rendered], ensure_ascii=False
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _read(connection: sqlite3.Connection, wanted: list[str]) -> tuple[dict[str, PreparedPrompt], list[str]]:
    """The entries found for ``wanted`` that pass their checksum, and the keys of those that fail."""
    found: dict[str, PreparedPrompt] = {}
    corrupted: list[str] = []
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = connection.execute(
            f"SELECT key, messages, cut, rendered, checksum FROM prompts WHERE key IN ({marks})", chunk
        ).fetchall()
        for key, messages, cut, rendered, checksum in rows:
            prepared = _convert(messages, cut, rendered)
            if prepared is not None and _checksum(key, prepared) == checksum:
                found[key] = prepared
            else:
                corrupted.append(key)
    return found, corrupted


def _convert(messages: object, cut: object, rendered: object) -> PreparedPrompt | None:
    """The entry, or None where a damaged row does not convert (SQLite keeps any type written)."""
    if not (isinstance(messages, str) and isinstance(cut, int) and isinstance(rendered, str)):
        return None
    try:
        pairs = json.loads(messages)
    except json.JSONDecodeError:
        return None
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, str) for v in p) for p in pairs
    ):
        return None
    return PreparedPrompt(tuple(Message(role, content) for role, content in pairs), bool(cut), rendered)
