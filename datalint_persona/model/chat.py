"""Render prompts with the model's chat template and find the response's tokens.

The response span comes from tokenizing prompt and response *together* and reading the tokenizer's
character offsets, never from tokenizing the prompt separately (a template's joins can merge tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datalint_persona.errors import ConfigError, ModelError, PersonaLintError
from datalint_persona.model.text_cut import char_bound, cut_prompt_chars, cut_response_chars
from datalint_persona.types import Message

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Used only for tokenizers that ship no chat template (base models).
PLAIN_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)


@dataclass(frozen=True)
class EncodedPair:
    """Token ids of prompt + response and which of them belong to the response.

    ``response_mask[i]`` is True where token i overlaps the response's characters.
    """

    input_ids: tuple[int, ...]
    response_mask: tuple[bool, ...]
    truncated: bool

    @property
    def n_response_tokens(self) -> int:
        return sum(self.response_mask)

    @property
    def needed_length(self) -> int:
        """Tokens up to the last response token: the template's tokens after it can't change the
        response's activations (attention is causal), so a forward pass may stop there."""
        return len(self.response_mask) - self.response_mask[::-1].index(True)


def _as_dicts(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def _template_kwargs(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    return {} if getattr(tokenizer, "chat_template", None) else {"chat_template": PLAIN_TEMPLATE}


def render_prompt(tokenizer: PreTrainedTokenizerBase, prompt: Sequence[Message]) -> str:
    """The prompt x as the model sees it before answering, generation header included.

    With no system turn, the template's own default system prompt (if any) applies.
    """
    text = tokenizer.apply_chat_template(
        _as_dicts(prompt), tokenize=False, add_generation_prompt=True, **_template_kwargs(tokenizer)
    )
    return str(text)


def prompt_length(tokenizer: PreTrainedTokenizerBase, prompt: Sequence[Message]) -> int:
    """Tokens of the rendered prompt, generation header included (what generation feeds)."""
    return len(tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"])


def fit_prompt(
    tokenizer: PreTrainedTokenizerBase, prompt: Sequence[Message], budget: int, *, fallback: int | None = None
) -> tuple[tuple[Message, ...], bool]:
    """The prompt cut so that it renders to at most ``budget`` tokens, and whether it was cut.

    The oldest text goes first: the head of the first non-system turn, then of the next turn.
    The system turn (or the template's default one) and the template's markers stay, so the model
    still sees a well-formed conversation. Generation and scoring both use the cut prompt, so y'
    is scored under exactly the prompt it was generated from.

    A budget that the system turn and the template alone exceed is a :class:`ConfigError`, unless
    the prompt fits a larger ``fallback`` (the model's context, when ``budget`` is a short
    ``--max-tokens``): then scoring cuts that prompt's head, as it cuts any pair beyond its budget.

    A turn far longer than the budget loses its head by characters first
    (:mod:`~datalint_persona.model.text_cut`), which keeps more than the token cut does, so that
    megabytes are never tokenized.
    """
    try:
        return _fit(tokenizer, cut_prompt_chars(prompt, char_bound(tokenizer, budget)), budget)
    except ConfigError:
        if fallback is None or fallback <= budget:
            raise
        return _fit(tokenizer, cut_prompt_chars(prompt, char_bound(tokenizer, fallback)), fallback)


def _fit(
    tokenizer: PreTrainedTokenizerBase, prompt: Sequence[Message], budget: int
) -> tuple[tuple[Message, ...], bool]:
    messages = list(prompt)
    excess = prompt_length(tokenizer, messages) - budget
    if excess <= 0:  # char_bound keeps more than the budget: a turn cut by characters never gets here
        return tuple(prompt), False
    for index, message in enumerate(messages):
        if message.role == "system":
            continue
        content = message.content
        while excess > 0 and content:
            offsets = tokenizer(content, add_special_tokens=False, return_offsets_mapping=True)[
                "offset_mapping"
            ]
            drop = min(excess, len(offsets))
            # Cut after the last dropped token's characters (at least one character, so it ends).
            cut = len(content) if drop >= len(offsets) else max(1, int(offsets[drop - 1][1]))
            content = content[cut:]
            messages[index] = Message(message.role, content)
            excess = prompt_length(tokenizer, messages) - budget
        if excess <= 0:
            return tuple(messages), True
    raise ConfigError(
        f"The system prompt and the chat template alone take more than the {budget} tokens left for a "
        "prompt (--max-tokens less --max-new-tokens).",
        fix="raise --max-tokens (up to the model's context) or lower --max-new-tokens.",
    )


def render_conversation(
    tokenizer: PreTrainedTokenizerBase, prompt: Sequence[Message], response: str
) -> tuple[str, int, int]:
    """Render x and y together; return the text and the response's [start, end) character span."""
    prompt_text = render_prompt(tokenizer, prompt)
    messages = [*_as_dicts(prompt), {"role": "assistant", "content": response}]
    full_text = str(tokenizer.apply_chat_template(messages, tokenize=False, **_template_kwargs(tokenizer)))
    start = len(prompt_text) if full_text.startswith(prompt_text) else 0
    # Some templates trim content; look for the response as rendered after the prompt.
    for candidate in (response, response.strip()):
        found = full_text.find(candidate, start) if candidate else -1
        if found >= 0:
            return full_text, found, found + len(candidate)
    raise PersonaLintError(
        "The chat template changed the response text, so its tokens can't be located.",
        fix="use a model whose chat template keeps assistant content verbatim.",
    )


def _end_of_turn_span(tokenizer: PreTrainedTokenizerBase, prompt: Sequence[Message]) -> tuple[str, int, int]:
    """x with an empty answer, and a one-character span where the answer's end-of-turn begins."""
    prompt_text = render_prompt(tokenizer, prompt)
    messages = [*_as_dicts(prompt), {"role": "assistant", "content": ""}]
    full_text = str(tokenizer.apply_chat_template(messages, tokenize=False, **_template_kwargs(tokenizer)))
    if not full_text.startswith(prompt_text) or len(full_text) == len(prompt_text):
        raise PersonaLintError(
            "The chat template puts nothing after an empty answer, so an empty y' has no token to score.",
            fix="use a model whose chat template ends each assistant turn with a marker.",
        )
    start = len(prompt_text)
    return full_text, start, start + 1


def encode_pair(
    tokenizer: PreTrainedTokenizerBase,
    prompt: Sequence[Message],
    response: str,
    *,
    max_tokens: int,
) -> EncodedPair:
    """Tokenize x + y once and mark y's tokens; cut to ``max_tokens`` keeping response tokens.

    When too long, the response's tail is cut first, then the prompt's head, so that at least
    one response token remains.

    An empty response is a real answer: the model ended its turn at once (an empty y'). Its one
    token is then the first token the template puts after the empty answer (its end-of-turn
    marker, the token the model generated), so an empty y' is scored at the position where the
    model stopped, the same way in every run and cache.

    Texts far longer than ``max_tokens`` are first cut by characters (the prompt turns' heads, the
    response's tail; see :mod:`~datalint_persona.model.text_cut`), which keeps more than the token
    cut does and so leaves its result unchanged.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            "The tokenizer gives no character offsets (it is not a 'fast' tokenizer).",
            fix="load a model with a tokenizer.json so transformers builds a fast tokenizer.",
        )
    chars = char_bound(tokenizer, max_tokens)
    prompt, response = cut_prompt_chars(prompt, chars), cut_response_chars(response, chars)
    text, start, end = (
        render_conversation(tokenizer, prompt, response) if response else _end_of_turn_span(tokenizer, prompt)
    )
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(encoding["input_ids"])
    # A token belongs to the response when its characters overlap [start, end).
    mask = [tok_start < end and tok_end > start for tok_start, tok_end in encoding["offset_mapping"]]
    if not any(mask):
        raise PersonaLintError("The response has no tokens after rendering.", fix="check the sample.")
    truncated = len(ids) > max_tokens
    if truncated:
        first = mask.index(True)
        last = len(mask) - 1 - mask[::-1].index(True)
        keep_end = min(last + 1, max(first + 1, max_tokens))
        keep_start = max(0, keep_end - max_tokens)
        ids, mask = ids[keep_start:keep_end], mask[keep_start:keep_end]
    return EncodedPair(tuple(ids), tuple(mask), truncated)
