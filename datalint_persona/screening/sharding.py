"""Split one screening run over several machines: ``--shard i/N`` and the bookkeeping a merge needs.

Assignment is by position: the sample with global index ``g`` (0-based, in load order over all
input files, exactly the order of an unsharded run) belongs to shard ``g % N + 1``. Every shard
loads every file, so each one knows the whole dataset and its per-file sample counts. Only the y'
generation and scoring are split; the verdicts, which need every sample, are decided by the merge.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from datalint_persona.errors import ConfigError
from datalint_persona.run_records import ShardInfo

_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based: 1/3, 2/3, 3/3)."""

    index: int
    count: int

    def owns(self, global_index: int) -> bool:
        """Whether the sample at ``global_index`` (0-based load order) is this shard's.

        >>> [g for g in range(7) if Shard(2, 3).owns(g)]
        [1, 4]
        """
        return global_index % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """Parse ``"i/N"`` with ``1 <= i <= N``.

    >>> parse_shard("2/3")
    Shard(index=2, count=3)
    """
    match = _PATTERN.match(text)
    if match is None:
        raise ConfigError(f"--shard {text}: expected i/N, for example 1/4.", fix="write it as INDEX/COUNT.")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ConfigError(
            f"--shard {text}: the index must be between 1 and the shard count.",
            fix=f"use 1/{max(count, 1)} to {max(count, 1)}/{max(count, 1)}.",
        )
    return Shard(index, count)


def shard_settings(shard: Shard, sizes: Mapping[str, int]) -> ShardInfo:
    """What ``persona-lint merge`` needs beyond the per-sample values: which shard this is, and
    how many samples the whole run has (``sizes``: samples per source). The verdicts need every
    sample, so the merge decides them."""
    return ShardInfo(index=shard.index, count=shard.count, total_samples=sum(sizes.values()))
