"""A run's per-sample results on disk, read back as a sequence, so a run's memory stays flat.

``screen`` writes each chunk's :class:`SampleScore` records here as it finishes them and keeps
only an 8-byte offset per sample. Reporters iterate the spool (one sequential read) or index it.
The file lives in the system's temporary folder and is deleted when the spool is garbage
collected or the process exits.
"""

from __future__ import annotations

import json
import os
import tempfile
import weakref
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from typing import IO, overload

from datalint_persona.types import InlineIgnore, Message, ReportedSample, Sample, SampleScore, TraitScore


def _encode(score: SampleScore) -> bytes:
    sample = score.sample
    record = [
        sample.source,
        sample.line,
        [[m.role, m.content] for m in sample.prompt],
        sample.response,
        score.index,
        score.y_prime,
        score.y_prime_hit_token_limit,
        score.truncated,
        [
            [t.trait, t.layer, t.projection_y, t.projection_y_prime, t.delta_p, t.z, t.p_value, t.q_value]
            for t in score.scores
        ],
        None if sample.ignore is None else [sample.ignore.traits, sample.ignore.reason],
    ]
    if isinstance(sample, ReportedSample):  # read from a report (a merge): no text, its hash and length
        record.append([sample.reported_hash, sample.reported_length])
    # Floats are written as their shortest round-tripping repr, so they read back exactly.
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def _decode(line: bytes) -> SampleScore:
    source, number, prompt, response, index, y_prime, hit_limit, truncated, scores, ignored, *reported = (
        json.loads(line)
    )
    ignore = (
        None
        if ignored is None
        else InlineIgnore(None if ignored[0] is None else tuple(ignored[0]), ignored[1])
    )
    messages = tuple(Message(role, content) for role, content in prompt)
    sample = (
        ReportedSample(source, number, messages, response, ignore, *reported[0])
        if reported
        else Sample(source, number, messages, response, ignore)
    )
    traits = tuple(TraitScore(*values) for values in scores)
    return SampleScore(sample, index, y_prime, hit_limit, truncated, traits)


def _remove(handle: IO[bytes], path: str) -> None:
    handle.close()
    with suppress(FileNotFoundError):
        os.unlink(path)


class SampleSpool(Sequence[SampleScore]):
    """An append-only, disk-backed ``Sequence[SampleScore]``.

    >>> spool = SampleSpool()
    >>> score = SampleScore(Sample("a.jsonl", 1, (Message("user", "hi"),), "yo"), 0, "hello", False, False, ())
    >>> spool.extend([score, score])
    >>> len(spool), spool[1] == score, list(spool) == [score, score]
    (2, True, True)
    """

    def __init__(self) -> None:
        descriptor, self._path = tempfile.mkstemp(prefix="persona-lint-samples-", suffix=".jsonl")
        self._handle = os.fdopen(descriptor, "w+b")
        self._offsets = array("q")
        self._end = 0
        self._finalizer = weakref.finalize(self, _remove, self._handle, self._path)

    def extend(self, scores: Iterable[SampleScore]) -> None:
        """Append records at the end of the file."""
        self._handle.seek(self._end)
        for score in scores:
            line = _encode(score)
            self._offsets.append(self._end)
            self._handle.write(line)
            self._end += len(line)
        self._handle.flush()

    def __len__(self) -> int:
        return len(self._offsets)

    @overload
    def __getitem__(self, index: int) -> SampleScore: ...

    @overload
    def __getitem__(self, index: slice) -> list[SampleScore]: ...

    def __getitem__(self, index: int | slice) -> SampleScore | list[SampleScore]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        offset = self._offsets[index]  # raises IndexError like a list
        self._handle.seek(offset)
        return _decode(self._handle.readline())

    def __iter__(self) -> Iterator[SampleScore]:
        # A separate handle: a reader may index the spool while iterating it.
        with open(self._path, "rb") as reader:
            for _ in range(len(self._offsets)):
                yield _decode(reader.readline())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SampleSpool({len(self)} samples)"

    def close(self) -> None:
        """Delete the file now (the spool is empty afterwards)."""
        self._finalizer()
        self._offsets = array("q")
