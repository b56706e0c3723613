"""Progress inside one ``model.generate`` batch, so a long batch does not look frozen.

:class:`DecodeProgress` has the shape of a transformers ``BaseStreamer`` (``put`` and ``end``):
``generate`` hands it the prompt ids once, then each decoding step's new tokens. It only counts
them, so the tokens generated are exactly those of a run without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["DECODE_STAGE", "DecodeProgress"]

# The progress stage it reports: (decoding steps done in this batch, the batch's max_new_tokens).
DECODE_STAGE = "generate-tokens"


class DecodeProgress:
    """Reports ``(DECODE_STAGE, steps, max_steps)`` after every decoding step of one batch.

    ``max_steps`` is the y' budget; a backend that decodes one step more (to record the last
    token's activations) is reported as at most ``max_steps``.

    >>> seen = []
    >>> counter = DecodeProgress(lambda *a: seen.append(a), 2)
    >>> for tokens in (["prompt ids"], [7], [8], [9]):
    ...     counter.put(tokens)
    >>> counter.end()
    >>> seen
    [('generate-tokens', 0, 2), ('generate-tokens', 1, 2), ('generate-tokens', 2, 2), ('generate-tokens', 2, 2)]
    """

    def __init__(self, report: Callable[[str, int, int], None], max_steps: int) -> None:
        self.report = report
        self.max_steps = max_steps
        self.steps = 0
        self._prompt_seen = False

    def put(self, value: Any) -> None:  # the tokens themselves are not needed: only the call counts
        if not self._prompt_seen:  # generate() first hands over the (batch, prompt) ids
            self._prompt_seen = True
            self.report(DECODE_STAGE, 0, self.max_steps)
            return
        self.steps += 1
        self.report(DECODE_STAGE, min(self.steps, self.max_steps), self.max_steps)

    def end(self) -> None:
        """generate() is done with the batch; the last report stands."""
