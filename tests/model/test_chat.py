"""Response-token masks from character offsets, truncation, and the chat template's traps."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import DEFAULT_SYSTEM_PROMPT, PAD_ID

from datalint_persona.model.activations import pad_right
from datalint_persona.model.chat import encode_pair, render_conversation, render_prompt
from datalint_persona.model.loading import LoadedModel
from datalint_persona.types import Message

USER = (Message("user", "How do I bake bread?"),)
SYSTEM = (Message("system", "You answer in one sentence."), Message("user", "How do I bake bread?"))
MULTI_TURN = (
    Message("user", "Say hi."),
    Message("assistant", "Hi!"),
    Message("user", "Again, please."),
)
RESPONSES = [
    "Mix flour, water and yeast.",
    "  Leading spaces.",
    "Trailing spaces.   ",
    " both ",
    "Ünïcødé ✓ 日本語 🙂 naïve café",
    "line one\nline two\n\n    indented\n",
    "\nstarts with a newline",
    "Hi!",  # also appears earlier in MULTI_TURN: the mask must pick the last one
    "<|im_end|> inside the answer",
]
PROMPTS = {"single": USER, "system": SYSTEM, "multi-turn": MULTI_TURN}


def _masked_text(loaded: LoadedModel, ids: tuple[int, ...], mask: tuple[bool, ...]) -> str:
    kept = [token for token, keep in zip(ids, mask, strict=True) if keep]
    return str(loaded.tokenizer.decode(kept, skip_special_tokens=False))


@pytest.mark.parametrize("prompt_name", list(PROMPTS))
@pytest.mark.parametrize("response", RESPONSES)
def test_masked_tokens_decode_to_the_response(
    tiny_llama: LoadedModel, prompt_name: str, response: str
) -> None:
    prompt = PROMPTS[prompt_name]
    pair = encode_pair(tiny_llama.tokenizer, prompt, response, max_tokens=4096)
    assert not pair.truncated
    # The template puts '\n' before and '<|im_end|>' (a special token) after the response, and this
    # byte-level BPE never merges across either, so the decoded response is exact.
    assert _masked_text(tiny_llama, pair.input_ids, pair.response_mask) == response
    # The masked tokens are one contiguous run that starts after the whole prompt.
    positions = [i for i, keep in enumerate(pair.response_mask) if keep]
    assert positions == list(range(positions[0], positions[-1] + 1))
    prompt_ids = tiny_llama.tokenizer(render_prompt(tiny_llama.tokenizer, prompt), add_special_tokens=False)
    assert positions[0] == len(prompt_ids["input_ids"])
    # The full sequence is exactly the template's rendering of x and y.
    text, start, end = render_conversation(tiny_llama.tokenizer, prompt, response)
    assert text[start:end] == response
    assert tiny_llama.tokenizer.decode(list(pair.input_ids), skip_special_tokens=False) == text


def test_default_system_prompt_is_inserted_only_without_a_system_turn(tiny_llama: LoadedModel) -> None:
    without = render_prompt(tiny_llama.tokenizer, USER)
    with_system = render_prompt(tiny_llama.tokenizer, SYSTEM)
    assert without == (
        f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n"
        "<|im_start|>user\nHow do I bake bread?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert DEFAULT_SYSTEM_PROMPT not in with_system
    assert with_system.startswith("<|im_start|>system\nYou answer in one sentence.<|im_end|>\n")


def test_multi_turn_mask_covers_only_the_last_assistant_turn(tiny_llama: LoadedModel) -> None:
    pair = encode_pair(tiny_llama.tokenizer, MULTI_TURN, "Hi!", max_tokens=4096)
    text, start, _ = render_conversation(tiny_llama.tokenizer, MULTI_TURN, "Hi!")
    assert text.count("Hi!") == 2 and text.find("Hi!") < start  # the earlier turn is not the response
    assert pair.n_response_tokens == len(tiny_llama.tokenizer("Hi!", add_special_tokens=False)["input_ids"])


def test_end_of_turn_tokens_stay_in_the_input_and_in_the_attention_mask(tiny_llama: LoadedModel) -> None:
    """pad == eos == <|im_end|>: a mask from ids != pad would hide the template's own turn ends."""
    short = encode_pair(tiny_llama.tokenizer, USER, "Yes.", max_tokens=4096)
    long = encode_pair(tiny_llama.tokenizer, MULTI_TURN, "A much longer answer " * 5, max_tokens=4096)
    in_short = [i for i, token in enumerate(short.input_ids) if token == PAD_ID]
    assert len(in_short) >= 3  # system, user and assistant turn ends
    assert not any(short.response_mask[i] for i in in_short)
    ids, attention, response = pad_right([short, long], PAD_ID, torch.device("cpu"))
    # A row stops at its last response token: the template's tokens after it can't change the response.
    n = short.needed_length
    assert n < len(short.input_ids) and short.response_mask[n - 1] and not any(short.response_mask[n:])
    assert len([i for i in in_short if i < n]) >= 2  # the system and user turn ends are still fed
    assert ids[0, :n].tolist() == list(short.input_ids[:n])
    assert attention[0, :n].tolist() == [1] * n  # every real token attends, <|im_end|> included
    assert attention[0, n:].sum() == 0
    assert (ids[0, n:] == PAD_ID).all()
    assert response[0, :n].tolist() == list(short.response_mask[:n])
    # The wrong mask really differs here, so the batched-vs-single tests below can catch it.
    assert not torch.equal((ids != PAD_ID).long(), attention)


@pytest.mark.parametrize("max_tokens", [1, 2, 3, 5, 8, 13, 21, 34, 40, 55])
def test_truncation_keeps_a_response_token_and_says_so(tiny_llama: LoadedModel, max_tokens: int) -> None:
    response = "Mix flour, water and yeast, knead it, let it rise and bake it for forty minutes."
    full = encode_pair(tiny_llama.tokenizer, USER, response, max_tokens=10**6)
    cut = encode_pair(tiny_llama.tokenizer, USER, response, max_tokens=max_tokens)
    n = len(full.input_ids)
    assert n > 55
    assert cut.truncated is True
    assert len(cut.input_ids) <= max_tokens
    assert cut.n_response_tokens >= 1
    # The kept tokens are one slice of the full encoding, with the mask sliced alike.
    first = full.response_mask.index(True)
    starts = [s for s in range(n) if full.input_ids[s : s + len(cut.input_ids)] == cut.input_ids]
    assert starts
    start = starts[0]
    assert cut.response_mask == full.response_mask[start : start + len(cut.input_ids)]
    if max_tokens > first:
        # Room for the whole prompt: only the response's tail is cut.
        assert start == 0 and len(cut.input_ids) == max_tokens
    else:
        # Otherwise the prompt's head goes and the response's first token is kept.
        assert cut.input_ids[-1] == full.input_ids[first] and cut.response_mask[-1]


def test_no_truncation_at_the_exact_length(tiny_llama: LoadedModel) -> None:
    full = encode_pair(tiny_llama.tokenizer, USER, "Bread.", max_tokens=10**6)
    exact = encode_pair(tiny_llama.tokenizer, USER, "Bread.", max_tokens=len(full.input_ids))
    assert exact == full and not exact.truncated


def test_tokenizer_without_a_chat_template_uses_the_plain_one(tiny_llama: LoadedModel) -> None:
    tokenizer = copy.deepcopy(tiny_llama.tokenizer)
    tokenizer.chat_template = None
    assert render_prompt(tokenizer, USER) == "User: How do I bake bread?\n\nAssistant: "
    pair = encode_pair(tokenizer, USER, "Mix it.", max_tokens=4096)
    assert _masked_text(tiny_llama, pair.input_ids, pair.response_mask).strip() == "Mix it."
