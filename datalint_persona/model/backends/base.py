"""The interface every y' generation backend implements."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from datalint_persona.types import Generation


@dataclass(frozen=True)
class GenerationSettings:
    """Settings that change y'. All of them are part of the cache key.

    ``temperature == 0`` means greedy decoding; ``seed`` matters only when sampling, where each
    prompt draws from its own generator seeded by :func:`sample_seed`, so a sampled y' does not
    depend on which prompts shared its batch.
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def sample_seed(seed: int, prompt: str) -> int:
    """The seed of one prompt's sampling: from the run's seed and the rendered prompt, so the same
    prompt samples the same y' in any batch, chunk or run.

    >>> sample_seed(0, "hi") == sample_seed(0, "hi") != sample_seed(1, "hi")
    True
    """
    digest = hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: torch and vLLM take a signed int64


class GenerationBackend(Protocol):
    name: str

    def generate(
        self, prompts: Sequence[str], settings: GenerationSettings, *, batch_size: int
    ) -> Iterator[tuple[list[int], list[Generation]]]:
        """Yield ``(indices into prompts, generations)`` as they finish.

        ``prompts`` are fully rendered chat-template strings. Backends may reorder work, but must
        produce for each prompt what a lone greedy run would.
        """
        ...
