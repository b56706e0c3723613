"""The interface every y' generation backend implements."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from datalint_persona.types import Generation


@dataclass(frozen=True)
class GenerationSettings:
    """Settings that change y'. All of them are part of the cache key.

    ``temperature == 0`` means greedy decoding; ``seed`` matters only when sampling.
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


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
