"""Find the samples far longer than a run's token budget while the dataset is first read, so that
a run says at once, before the model loads, which samples it will cut."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from datalint_persona.types import Sample

# A rough rate for English text and code; the early warning says "about" for it.
CHARS_PER_TOKEN_ESTIMATE = 4
# Oversize samples a warning names before it says "and N more".
NAMED_PER_FILE = 3

__all__ = [
    "CHARS_PER_TOKEN_ESTIMATE",
    "NAMED_PER_FILE",
    "OversizeSamples",
    "oversize_warnings",
    "sample_chars",
]


def sample_chars(sample: Sample) -> int:
    """Characters of the sample's prompt turns and response (the chat template's are left out).

    >>> from datalint_persona.types import Message
    >>> sample_chars(Sample("a.jsonl", 1, (Message("user", "hi"),), "hello"))
    7
    """
    return sum(len(m.content) for m in sample.prompt) + len(sample.response)


@dataclass
class OversizeSamples:
    """One file's samples longer than ``limit`` characters: how many, and the first few."""

    limit: int
    count: int = 0
    first: list[tuple[int, int]] = field(default_factory=list)  # (line, characters)

    def add(self, sample: Sample) -> None:
        chars = sample_chars(sample)
        if chars <= self.limit:
            return
        self.count += 1
        if len(self.first) < NAMED_PER_FILE:
            self.first.append((sample.line, chars))

    def warning(self, source: str, budget: int) -> str | None:
        """One line naming the file's first oversize samples, their size and the fix.

        >>> found = OversizeSamples(limit=40)
        >>> found.count, found.first = 5, [(2, 1_000_000), (7, 900), (9, 800)]
        >>> print(found.warning("train.jsonl", 10))  # doctest: +NORMALIZE_WHITESPACE
        train.jsonl: 5 sample(s) longer than the 10-token sample budget: train.jsonl:2 (about 250000
        tokens), train.jsonl:7 (about 225 tokens), train.jsonl:9 (about 200 tokens) and 2 more. Each
        is cut to 10 tokens, the prompt's head first; pass --max-sample-tokens N to keep more (at
        most the model's context), or fewer to screen faster.
        """
        if not self.count:
            return None
        named = ", ".join(
            f"{source}:{line} (about {chars // CHARS_PER_TOKEN_ESTIMATE} tokens)"
            for line, chars in self.first
        )
        more = f" and {self.count - len(self.first)} more" if self.count > len(self.first) else ""
        return (
            f"{source}: {self.count} sample(s) longer than the {budget}-token sample budget: {named}{more}. "
            f"Each is cut to {budget} tokens, the prompt's head first; pass --max-sample-tokens N to keep "
            "more (at most the model's context), or fewer to screen faster."
        )


def oversize_warnings(found: Mapping[str, OversizeSamples], budget: int) -> list[str]:
    """One warning per file that has samples longer than the ``budget``, in reading order."""
    warnings = (samples.warning(source, budget) for source, samples in found.items())
    return [warning for warning in warnings if warning is not None]
