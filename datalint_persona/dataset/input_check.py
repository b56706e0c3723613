"""Tie a screening run to the exact data it describes.

A run reads its inputs twice: a first pass checks and counts every record and hashes each file
(the sha256 a report records), a second pass streams the samples through the model. Both passes
keep a running sha256 of each source's samples (:class:`SampleTally`); after the second pass,
:func:`check_unchanged` compares the two and hashes the files again. An edit between or during
the passes, even one that keeps the number of samples, stops the run with an error instead of
giving a report whose sha256 does not match what was scored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from datalint_persona.errors import PersonaLintError
from datalint_persona.types import Sample

if TYPE_CHECKING:
    from datalint_persona.dataset.loaders import DatasetScan

_FIX = "screen a copy of the data that nothing writes to."


class SampleTally:
    """The number of samples read, and a running sha256 of each source's samples (line and content).

    >>> from datalint_persona.types import Message
    >>> one, other = SampleTally(), SampleTally()
    >>> for tally, text in ((one, "hello"), (other, "hellO")):
    ...     tally.add(Sample("a.jsonl", 1, (Message("user", "hi"),), text))
    >>> one.count, one.digests() == other.digests()
    (1, False)
    """

    def __init__(self) -> None:
        self.count = 0
        self._digests: dict[str, Any] = {}

    def add(self, sample: Sample) -> None:
        self.count += 1
        digest = self._digests.setdefault(sample.source, hashlib.sha256())
        digest.update(f"{sample.line}\0{sample.content_hash}\n".encode())

    def digests(self) -> dict[str, str]:
        return {source: digest.hexdigest() for source, digest in self._digests.items()}


def check_unchanged(sources: Sequence[str], scan: DatasetScan, second_read: SampleTally) -> None:
    """Raise when the samples read the second time, or the files' bytes now, differ from the first pass."""
    from datalint_persona.dataset.loaders import input_sha256
    from datalint_persona.dataset.sources import locate_all

    if second_read.count != scan.n_samples:
        raise PersonaLintError(
            f"The input changed while it was being screened: {scan.n_samples} samples on the first "
            f"read, {second_read.count} on the second.",
            fix=_FIX,
        )
    now = second_read.digests()
    for source, digest in scan.sample_digests.items():
        if now.get(source) != digest:
            raise PersonaLintError(
                f"The input changed while it was being screened: {source} holds other samples than "
                "on the first read (same count, different content).",
                fix=_FIX,
            )
    for where, recorded in zip(locate_all(sources), scan.inputs, strict=True):
        if recorded.sha256 is not None and input_sha256(where) != recorded.sha256:
            raise PersonaLintError(
                f"The input changed while it was being screened: {where.shown} no longer has the "
                f"sha256 {recorded.sha256} it had on the first read, which the report would record.",
                fix=_FIX,
            )
