"""y' generation batches under a token budget: a long prompt no longer pads a whole batch to its
length (issue 16), and batching changes neither the answers, their order, nor their cache keys."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from datalint_persona.model.backends import GenerationSettings
from datalint_persona.model.backends.transformers_backend import (
    PROMPT_SLACK,
    TransformersBackend,
    generation_batches,
    generation_token_budget,
)
from datalint_persona.model.chat import render_prompt
from datalint_persona.model.loading import LoadedModel
from datalint_persona.screening.answer_cache import GenerationCache, generation_key
from datalint_persona.screening.generation import generate_with_cache
from datalint_persona.types import Generation, Message

SETTINGS = GenerationSettings(max_new_tokens=4)
LONG_QUESTION = "Tell me everything: " + " ".join(f"fact {i} about the fox." for i in range(20))
SHORT_QUESTIONS = [
    "Hi",
    "What is 12 + 30?",
    "Code?",
    "Say hi.",
    "Bake bread?",
    "Why is the sky blue?",
    "A fox?",
    "Name a dog.",
    "Good morning!",
    "Add 2 and 3.",
    "Thanks.",
]


def _padded_tokens(lengths: Sequence[int], batch: Sequence[int], max_new_tokens: int) -> int:
    """What a left-padded batch costs: every row as long as its longest prompt, plus y'."""
    return len(batch) * (max(lengths[i] for i in batch) + max_new_tokens)


def _check_batches(
    lengths: Sequence[int], batches: Sequence[Sequence[int]], max_new_tokens: int, batch_size: int
) -> None:
    budget = generation_token_budget(lengths, max_new_tokens, batch_size=batch_size)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # each prompt once
    for batch in batches:
        assert 1 <= len(batch) <= batch_size
        if len(batch) > 1:  # only a prompt that alone exceeds the budget may
            assert _padded_tokens(lengths, batch, max_new_tokens) <= budget
    # Greedy: no batch could have taken the next (longer) prompt within the budget and batch size.
    for batch, following in zip(batches, batches[1:], strict=False):
        grown = [*batch, following[0]]
        assert len(grown) > batch_size or _padded_tokens(lengths, grown, max_new_tokens) > budget


def test_the_issue_case_the_long_prompt_runs_alone() -> None:
    # The issue: 16 rows around a 1,350-token prompt, 3,045 real tokens padded to 21,600.
    lengths = [100 + 7 * i for i in range(63)] + [1350]
    max_new, batch_size = 1, 16
    batches = list(generation_batches(lengths, max_new, batch_size=batch_size))
    _check_batches(lengths, batches, max_new, batch_size)
    assert [len(lengths) - 1] in batches
    padded = sum(_padded_tokens(lengths, b, max_new) for b in batches)
    # The old budget (batch_size x the longest prompt) kept plain runs of 16 in sorted order.
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    old = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    old_padded = sum(_padded_tokens(lengths, b, max_new) for b in old)
    real = sum(n + max_new for n in lengths)
    assert old_padded > 1.5 * real  # the 1,350-token prompt's batch alone pads 16 x 1,351
    assert padded < 1.2 * real


@pytest.mark.parametrize("seed", range(5))
def test_skewed_lengths_stay_within_the_budget(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(20, 200) for _ in range(rng.randint(1, 80))]
    lengths += [rng.randint(800, 4000) for _ in range(rng.randint(0, 3))]
    rng.shuffle(lengths)
    for max_new in (1, 96):
        batches = list(generation_batches(lengths, max_new, batch_size=16))
        _check_batches(lengths, batches, max_new, 16)


def test_a_prompt_beyond_the_budget_runs_alone_and_the_budget_is_never_above_the_old_one() -> None:
    lengths = [10, 12, 11, 900, 10, 13]
    batches = list(generation_batches(lengths, 2, batch_size=4))
    # Budget 4 x (4 x 11 + 2) = 184 (median_low 11): four short rows cost 4 x 14, and the 900 one
    # cannot join the fifth short one (2 x 902), so it runs alone.
    assert batches == [[0, 4, 2, 1], [5], [3]]
    assert generation_token_budget(lengths, 2, batch_size=4) == 4 * (PROMPT_SLACK * 11 + 2) == 184
    # Short prompts alone: the budget is the old one (rows x (longest + new tokens)), never above.
    assert generation_token_budget([10, 12, 11], 2, batch_size=4) == 4 * (12 + 2)
    assert generation_token_budget(lengths, 2, batch_size=4) <= 4 * (max(lengths) + 2)
    assert list(generation_batches([], 2, batch_size=4)) == []


def _rendered(loaded: LoadedModel) -> list[str]:
    questions = [*SHORT_QUESTIONS[:6], LONG_QUESTION, *SHORT_QUESTIONS[6:]]  # the long one mid-input
    return [render_prompt(loaded.tokenizer, (Message("user", q),)) for q in questions]


def _lone(backend: TransformersBackend, prompts: Sequence[str]) -> list[Generation]:
    """One prompt per generate() call: no padding, no batch."""
    out = []
    for prompt in prompts:
        ((indices, generations),) = list(backend.generate([prompt], SETTINGS, batch_size=1))
        assert indices == [0]
        out.extend(generations)
    return out


def test_backend_batches_the_long_prompt_alone_with_the_lone_answers(any_tiny: LoadedModel) -> None:
    prompts = _rendered(any_tiny)
    lengths = [len(any_tiny.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    long_index = prompts.index(next(p for p in prompts if LONG_QUESTION in p))
    assert lengths[long_index] > 3 * sorted(lengths)[len(lengths) // 2]
    batch_size = 8
    budget = generation_token_budget(lengths, SETTINGS.max_new_tokens, batch_size=batch_size)
    backend = TransformersBackend(any_tiny)
    batched: dict[int, Generation] = {}
    batches = []
    for indices, generations in backend.generate(prompts, SETTINGS, batch_size=batch_size):
        batches.append(indices)
        batched.update(zip(indices, generations, strict=True))
    assert [long_index] in batches
    assert len(batches) >= 3  # the short prompts still share batches
    for batch in batches:
        assert len(batch) == 1 or _padded_tokens(lengths, batch, SETTINGS.max_new_tokens) <= budget
    assert [batched[i] for i in range(len(prompts))] == _lone(backend, prompts)


def test_results_come_back_in_input_order_under_unchanged_cache_keys(
    tiny_llama: LoadedModel, tmp_path: Path
) -> None:
    prompts = _rendered(tiny_llama)
    backend = TransformersBackend(tiny_llama)
    lone = _lone(backend, prompts)
    # The key of one y' names model, backend, prompt and settings; batching is not part of it.
    assert generation_key("sha256:ab", "transformers", "hi", SETTINGS.as_dict()) == (
        "453512eb8dd3c1b8e0b531ce5245d090f1085193d230616a012be50a8d44cb38"
    )
    cache = GenerationCache(tmp_path)
    try:
        first = generate_with_cache(backend, cache, tiny_llama.identity, prompts, SETTINGS, batch_size=8)
        assert first == lone  # input order, though the batches ran in length order
        assert cache.stats.written == len(prompts)
    finally:
        cache.close()
    # A cache filled one prompt at a time (as batching before this change could) serves every y'.
    lone_cache = GenerationCache(tmp_path / "lone")
    try:
        generate_with_cache(backend, lone_cache, tiny_llama.identity, prompts, SETTINGS, batch_size=1)
    finally:
        lone_cache.close()
    reused = GenerationCache(tmp_path / "lone")
    try:
        again = generate_with_cache(backend, reused, tiny_llama.identity, prompts, SETTINGS, batch_size=8)
        assert again == lone
        assert reused.stats.hits == len(prompts) and reused.stats.misses == 0
    finally:
        reused.close()
