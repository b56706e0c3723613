"""Cut huge texts by characters before they are tokenized, without changing the token cut.

A sample of megabytes would otherwise be tokenized whole only for most of its tokens to be
dropped. The character bound is safe: no token of the vocabulary covers more characters than its
longest vocabulary string (a byte-level BPE string has one character per byte, and a byte is at
most one character), so ``chars_per_token * tokens`` characters always hold at least ``tokens``
tokens. The margin keeps the tokens near the character cut (whose merges the cut may change) out
of what the token cut keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from datalint_persona.types import Message

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Tokens beyond the budget kept on the side of a character cut.
CUT_MARGIN_TOKENS = 64
_LONGEST: WeakKeyDictionary[object, int] = WeakKeyDictionary()

__all__ = ["CUT_MARGIN_TOKENS", "char_bound", "chars_per_token", "cut_prompt_chars", "cut_response_chars"]


def chars_per_token(tokenizer: PreTrainedTokenizerBase) -> int:
    """The most characters one token can cover: its vocabulary's longest string (at least 1)."""
    try:
        return _LONGEST[tokenizer]
    except (KeyError, TypeError):
        pass
    longest = max((len(token) for token in tokenizer.get_vocab()), default=1)
    with suppress(TypeError):  # not weakly referable: computed again next time
        _LONGEST[tokenizer] = max(1, longest)
    return max(1, longest)


def char_bound(tokenizer: PreTrainedTokenizerBase, tokens: int) -> int:
    """Characters of one message that surely hold more than ``tokens`` tokens (and a margin).

    >>> class Vocab:
    ...     def get_vocab(self): return {"a": 0, "abcd": 1}
    >>> char_bound(Vocab(), 10)  # type: ignore[arg-type]
    296
    """
    return chars_per_token(tokenizer) * (tokens + CUT_MARGIN_TOKENS)


def cut_prompt_chars(prompt: Sequence[Message], chars: int) -> tuple[Message, ...]:
    """Each non-system turn keeps its last ``chars`` characters, as the token cut keeps a prompt's
    newest tokens; the system turn is never cut (see :func:`~datalint_persona.model.chat.fit_prompt`).

    >>> cut_prompt_chars([Message("system", "abc"), Message("user", "hello")], 2)
    (Message(role='system', content='abc'), Message(role='user', content='lo'))
    """
    return tuple(
        m if m.role == "system" or len(m.content) <= chars else Message(m.role, m.content[-chars:])
        for m in prompt
    )


def cut_response_chars(response: str, chars: int) -> str:
    """The response's first ``chars`` characters, as the token cut keeps a response's head.

    >>> cut_response_chars("hello", 2)
    'he'
    """
    return response if len(response) <= chars else response[:chars]
