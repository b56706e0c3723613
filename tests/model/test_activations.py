"""Batched, right-padded mean activations against per-sample ones, and length-sorted batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import PAD_ID
from hypothesis import given, settings
from hypothesis import strategies as st

from datalint_persona.model.activations import (
    ForwardWork,
    iter_mean_activations,
    length_sorted_batches,
    masked_mean,
)
from datalint_persona.model.chat import EncodedPair, encode_pair
from datalint_persona.model.loading import LoadedModel
from datalint_persona.types import Message

PAIRS = [
    ((Message("user", "Hi"),), "Yo."),
    (
        (
            Message("system", "You answer at length, in many sentences, with every detail."),
            Message("user", "How do I bake bread? Tell me every step, please."),
            Message("assistant", "Mix flour, water, salt and yeast."),
            Message("user", "And then what? Go on, with more detail this time."),
        ),
        "Knead it for ten minutes, let it rise for an hour, shape it, let it rise again, "
        "and bake it for forty minutes. " * 4,
    ),
    ((Message("user", "What is 12 + 30?"),), "42"),
    ((Message("user", "Say something kind."),), "Thank you! You are welcome. 🙂 Good night.\n"),
    ((Message("user", "Code?"),), "def add(a, b):\n    return a + b\n"),
]


def _encoded(loaded: LoadedModel) -> list[EncodedPair]:
    return [encode_pair(loaded.tokenizer, p, r, max_tokens=4096) for p, r in PAIRS]


def _collect(
    loaded: LoadedModel, pairs: list[EncodedPair], layers: list[int], **kwargs: int
) -> dict[int, np.ndarray]:
    out = {layer: np.full((len(pairs), loaded.hidden_size), np.nan) for layer in layers}
    seen: list[int] = []
    for batch, means in iter_mean_activations(loaded, pairs, layers, **kwargs):
        seen.extend(batch)
        for layer in layers:
            assert means[layer].shape == (len(batch), loaded.hidden_size)
            out[layer][batch] = means[layer].numpy()
    assert sorted(seen) == list(range(len(pairs)))
    return out


def _independent_means(loaded: LoadedModel, pair: EncodedPair) -> tuple[torch.Tensor, ...]:
    """Mean over the response tokens of output_hidden_states, one unpadded sample at a time."""
    ids = torch.tensor([pair.input_ids])
    with torch.no_grad():
        output = loaded.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
    hidden = output.hidden_states
    mask = torch.tensor(pair.response_mask)
    return tuple(h[0, mask].mean(dim=0) for h in hidden)


def test_batched_right_padded_means_equal_per_sample_means(any_tiny: LoadedModel) -> None:
    pairs = _encoded(any_tiny)
    lengths = [len(p.input_ids) for p in pairs]
    assert max(lengths) > 4 * min(lengths)  # very different lengths share a batch
    layers = list(range(any_tiny.num_layers + 1))
    batched = _collect(any_tiny, pairs, layers, batch_size=8, token_budget=10**6)
    single = _collect(any_tiny, pairs, layers, batch_size=1)
    for index, pair in enumerate(pairs):
        reference = _independent_means(any_tiny, pair)
        for layer in layers:
            np.testing.assert_allclose(batched[layer][index], single[layer][index], atol=1e-5, rtol=0)
            np.testing.assert_allclose(single[layer][index], reference[layer].numpy(), atol=1e-5, rtol=0)


def test_the_wrong_attention_mask_would_change_the_means(tiny_llama: LoadedModel) -> None:
    """Guards the test above: masking pad-id tokens (the template's <|im_end|>) changes activations."""
    pair = _encoded(tiny_llama)[0]
    ids = torch.tensor([pair.input_ids])
    mask = torch.tensor(pair.response_mask)
    with torch.no_grad():
        right_mask, wrong_mask = torch.ones_like(ids), (ids != PAD_ID).long()
        right = tiny_llama.model(input_ids=ids, attention_mask=right_mask, output_hidden_states=True)
        wrong = tiny_llama.model(input_ids=ids, attention_mask=wrong_mask, output_hidden_states=True)
    layer = tiny_llama.num_layers - 1
    gap = (right.hidden_states[layer][0, mask] - wrong.hidden_states[layer][0, mask]).abs().max()
    assert gap > 1e-3


def test_masked_mean_ignores_unmasked_positions() -> None:
    hidden = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    mask = torch.tensor([[False, True, True], [True, False, False]])
    expected = torch.stack([hidden[0, 1:].mean(0), hidden[1, 0]])
    assert torch.equal(masked_mean(hidden, mask), expected)


def test_length_sorted_batches_docstring_example() -> None:
    assert list(length_sorted_batches([5, 1, 4, 2], batch_size=2, token_budget=100)) == [[1, 3], [2, 0]]


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 300), max_size=60),
    batch_size=st.integers(1, 17),
    token_budget=st.integers(1, 2000),
)
def test_length_sorted_batches_respect_limits(lengths: list[int], batch_size: int, token_budget: int) -> None:
    batches = list(length_sorted_batches(lengths, batch_size=batch_size, token_budget=token_budget))
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))  # every index exactly once
    assert all(batch for batch in batches)
    for batch in batches:
        assert len(batch) <= batch_size
        padded = max(lengths[i] for i in batch) * len(batch)
        # Only a lone over-long sample may exceed the budget.
        assert padded <= token_budget or len(batch) == 1
    # Sorted by length: batches do not interleave.
    maxima = [max(lengths[i] for i in b) for b in batches]
    minima = [min(lengths[i] for i in b) for b in batches]
    assert all(maxima[k] <= minima[k + 1] for k in range(len(batches) - 1))


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_batch_size_is_honoured_by_iter_mean_activations(tiny_llama: LoadedModel, batch_size: int) -> None:
    pairs = _encoded(tiny_llama)
    sizes = [len(b) for b, _ in iter_mean_activations(tiny_llama, pairs, [1], batch_size=batch_size)]
    assert max(sizes) <= batch_size and sum(sizes) == len(pairs)


def test_forward_work_counts_tokens_and_causal_pairs_by_brute_force() -> None:
    lengths, prefix = [7, 9, 12], 5
    work = ForwardWork()
    work.add_batch(lengths, prefix)
    # By hand: the prefix's tokens once, then each row's own tokens; token t sees t + 1 keys.
    tokens = set(range(prefix)) | {(row, t) for row, n in enumerate(lengths) for t in range(prefix, n)}
    pairs = sum(t + 1 for t in range(prefix)) + sum(t + 1 for n in lengths for t in range(prefix, n))
    assert (work.tokens, work.attention_pairs) == (len(tokens), pairs)
    unshared = ForwardWork()
    unshared.add_batch(lengths, 0)
    assert unshared.tokens == sum(lengths) == work.tokens + prefix * (len(lengths) - 1)


def test_shared_prefix_runs_fewer_tokens_for_the_same_means(tiny_llama: LoadedModel) -> None:
    system = (Message("system", "You are a careful assistant who always answers in full sentences."),)
    prompts = [(*system, Message("user", q)) for q in ("Hi", "Name a colour.", "What is 2 + 2?")]
    pairs = [
        encode_pair(tiny_llama.tokenizer, p, r, max_tokens=512)
        for p, r in zip(prompts, ["Hello there.", "Blue.", "Four."], strict=True)
    ]
    runs = {}
    for share in (True, False):
        work = ForwardWork()
        [(batch, means)] = list(
            iter_mean_activations(tiny_llama, pairs, [1, 3], batch_size=8, share_prefix=share, work=work)
        )
        runs[share] = (work, batch, means)
    shared_work, batch, shared_means = runs[True]
    plain_work, plain_batch, plain_means = runs[False]
    assert batch == plain_batch
    assert plain_work.tokens == sum(p.needed_length for p in pairs)
    assert shared_work.tokens < plain_work.tokens - 10  # the system prompt ran once, not three times
    for layer in (1, 3):
        torch.testing.assert_close(shared_means[layer], plain_means[layer], rtol=1e-5, atol=1e-5)
