"""Hooks against ``output_hidden_states``, early stopping, and hook removal."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from datalint_persona.errors import ModelError
from datalint_persona.model.capture import (
    LAYER_TEMPLATE_VARIABLE,
    LAYER_TEMPLATES,
    MIN_SHARED_PREFIX,
    NORM_PATH_VARIABLE,
    _StopForward,
    decoder_blocks,
    final_norm,
    forward_to_layers,
    residual_hooks,
    shared_prefix_length,
)
from datalint_persona.model.loading import LoadedModel


def _batch(loaded: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Two right-padded rows; the pad id (== <|im_end|>) also occurs inside the real tokens."""
    tokenizer = loaded.tokenizer
    long_ids = tokenizer(
        "<|im_start|>user\nHow do I bake bread?<|im_end|>\n<|im_start|>assistant\nMix it.",
        add_special_tokens=False,
    )["input_ids"]
    short_ids = tokenizer("<|im_start|>user\nHi<|im_end|>\n", add_special_tokens=False)["input_ids"]
    assert tokenizer.pad_token_id in short_ids  # the template's own end-of-turn token
    width = len(long_ids)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([long_ids, short_ids + [pad] * (width - len(short_ids))])
    attention = torch.tensor([[1] * width, [1] * len(short_ids) + [0] * (width - len(short_ids))])
    return ids, attention


def _reference(loaded: LoadedModel, ids: torch.Tensor, attention: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        out = loaded.model(input_ids=ids, attention_mask=attention, output_hidden_states=True)
    return tuple(out.hidden_states)


def _hook_counts(model: torch.nn.Module) -> int:
    return sum(
        len(m._forward_pre_hooks) + len(m._forward_hooks)
        for m in model.modules()  # noqa: SLF001
    )


def test_every_layer_matches_output_hidden_states_exactly(any_tiny: LoadedModel) -> None:
    ids, attention = _batch(any_tiny)
    reference = _reference(any_tiny, ids, attention)
    n_layers = any_tiny.num_layers
    assert len(reference) == n_layers + 1
    # One layer at a time (each forward stops at a different place) ...
    for layer in range(n_layers + 1):
        captured = forward_to_layers(any_tiny.model, ids, attention, [layer])
        assert set(captured) == {layer}
        assert captured[layer].shape == reference[layer].shape
        assert torch.equal(captured[layer], reference[layer]), f"layer {layer}"
    # ... and all layers in one pass, including L (after the final norm).
    captured = forward_to_layers(any_tiny.model, ids, attention, list(range(n_layers + 1)))
    for layer in range(n_layers + 1):
        assert torch.equal(captured[layer], reference[layer]), f"layer {layer} (all at once)"
    # L differs from the last block's output: it is the final norm of it.
    assert not torch.equal(reference[n_layers], reference[n_layers - 1])


def test_final_layer_is_the_final_norm_of_the_last_block(any_tiny: LoadedModel) -> None:
    ids, attention = _batch(any_tiny)
    reference = _reference(any_tiny, ids, attention)
    last_block_output: dict[str, torch.Tensor] = {}

    def grab(_module: Any, _args: Any, output: Any) -> None:
        last_block_output["h"] = output[0] if isinstance(output, tuple) else output

    handle = decoder_blocks(any_tiny.model)[-1].register_forward_hook(grab)
    try:
        with torch.no_grad():
            any_tiny.model(input_ids=ids, attention_mask=attention)
    finally:
        handle.remove()
    with torch.no_grad():
        normed = final_norm(any_tiny.model)(last_block_output["h"])
    assert torch.equal(normed, reference[any_tiny.num_layers])


@pytest.mark.parametrize("deepest", [0, 1, 2])
def test_forward_stops_after_the_deepest_layer(any_tiny: LoadedModel, deepest: int) -> None:
    model = any_tiny.model
    blocks = decoder_blocks(model)
    ran: list[str] = []
    handles = [
        block.register_forward_hook(lambda *_a, i=i: ran.append(f"block{i}"))
        for i, block in enumerate(blocks)
    ]
    handles.append(final_norm(model).register_forward_hook(lambda *_a: ran.append("norm")))
    handles.append(model.lm_head.register_forward_hook(lambda *_a: ran.append("lm_head")))
    ids, attention = _batch(any_tiny)
    try:
        captured = forward_to_layers(model, ids, attention, [deepest])
    finally:
        for handle in handles:
            handle.remove()
    # hidden_states[l] is the input of block l: blocks 0..l-1 ran, block l and later never did.
    assert ran == [f"block{i}" for i in range(deepest)]
    assert deepest in captured


def test_deepest_layer_l_runs_every_block_but_not_the_lm_head(any_tiny: LoadedModel) -> None:
    model = any_tiny.model
    ran: list[str] = []
    handles = [
        final_norm(model).register_forward_hook(lambda *_a: ran.append("norm")),
        model.lm_head.register_forward_hook(lambda *_a: ran.append("lm_head")),
    ]
    ids, attention = _batch(any_tiny)
    try:
        forward_to_layers(model, ids, attention, [any_tiny.num_layers])
    finally:
        for handle in handles:
            handle.remove()
    assert ran == ["norm"]


def test_hooks_are_removed_after_the_context(any_tiny: LoadedModel) -> None:
    model = any_tiny.model
    before = _hook_counts(model)
    ids, attention = _batch(any_tiny)
    with residual_hooks(model, [1, any_tiny.num_layers], stop_after_deepest=False) as store:
        assert _hook_counts(model) == before + 2
        with torch.no_grad():
            model(input_ids=ids, attention_mask=attention)
    assert _hook_counts(model) == before
    kept = store[1]
    # A later forward must not write into the old store any more.
    with torch.no_grad():
        model(input_ids=ids[:, :3], attention_mask=attention[:, :3])
    assert store[1] is kept and store[1].shape[1] == ids.shape[1]


def test_hooks_are_removed_when_the_forward_raises(any_tiny: LoadedModel) -> None:
    model = any_tiny.model
    before = _hook_counts(model)
    ids, attention = _batch(any_tiny)
    with pytest.raises(RuntimeError, match="boom"), residual_hooks(model, [1]):
        assert _hook_counts(model) == before + 1
        raise RuntimeError("boom")
    assert _hook_counts(model) == before
    # The stop signal itself escaping a plain model call must not leave hooks behind either.
    with pytest.raises(_StopForward), residual_hooks(model, [2]), torch.no_grad():
        model(input_ids=ids, attention_mask=attention)
    assert _hook_counts(model) == before
    # A crash inside a hooked forward (bad token ids) too.
    with pytest.raises((IndexError, RuntimeError)):
        forward_to_layers(model, torch.full_like(ids, 10**6), attention, [any_tiny.num_layers])
    assert _hook_counts(model) == before


@pytest.mark.parametrize("layers", [[-1], [5], [], [0, 99]])
def test_out_of_range_layers_are_refused(tiny_llama: LoadedModel, layers: list[int]) -> None:
    before = _hook_counts(tiny_llama.model)
    with pytest.raises(ModelError, match=r"0\.\.4"), residual_hooks(tiny_llama.model, layers):
        pass
    assert _hook_counts(tiny_llama.model) == before


def test_unknown_architecture_names_what_was_tried_and_the_variable_that_fixes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(LAYER_TEMPLATE_VARIABLE, raising=False)
    with pytest.raises(ModelError) as caught:
        decoder_blocks(torch.nn.Linear(2, 2))
    assert "tried model.layers.{num}, " in caught.value.problem
    assert caught.value.fix is not None
    assert f"set {LAYER_TEMPLATE_VARIABLE} to the attribute path" in caught.value.fix
    assert "open an issue" not in caught.value.fix


class _RenamedTrunk(torch.nn.Module):
    """A tiny random residual model whose blocks live where no known template looks: trunk.stack.{num}."""

    def __init__(self, n_blocks: int = 3, width: int = 8, vocab: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(vocab, width)
        self.trunk = torch.nn.Module()
        self.trunk.stack = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(n_blocks))
        self.trunk.last_norm = torch.nn.LayerNorm(width)

    def hidden_states(self, input_ids: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's residual stream, computed without hooks, as output_hidden_states gives it:
        [embeddings, after block 0, ..., the final norm of the last block's output]."""
        states = [self.embed(input_ids)]
        for block in self.trunk.stack:
            states.append(states[-1] + torch.tanh(block(states[-1])))
        return [*states[:-1], self.trunk.last_norm(states[-1])]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, use_cache: bool = False) -> Any:
        hidden = self.embed(input_ids)
        for block in self.trunk.stack:
            hidden = hidden + torch.tanh(block(hidden))
        return self.trunk.last_norm(hidden)


def test_a_layer_template_set_in_the_environment_finds_renamed_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = _RenamedTrunk().eval()
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    monkeypatch.delenv(LAYER_TEMPLATE_VARIABLE, raising=False)
    with pytest.raises(ModelError, match=LAYER_TEMPLATE_VARIABLE):
        decoder_blocks(model)
    monkeypatch.setenv(LAYER_TEMPLATE_VARIABLE, "trunk.stack.{num}")
    blocks = decoder_blocks(model)
    assert list(blocks) == list(model.trunk.stack)
    captured = forward_to_layers(model, ids, torch.ones_like(ids), [0, 1, 2])
    with torch.no_grad():
        reference = model.hidden_states(ids)
    for layer in (0, 1, 2):
        assert torch.equal(captured[layer], reference[layer]), f"layer {layer}"


def test_a_final_norm_path_set_in_the_environment_gives_the_last_layer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = _RenamedTrunk().eval()
    ids = torch.tensor([[1, 2, 3, 4]])
    monkeypatch.setenv(LAYER_TEMPLATE_VARIABLE, "trunk.stack.{num}")
    monkeypatch.delenv(NORM_PATH_VARIABLE, raising=False)
    with pytest.raises(ModelError) as caught:
        forward_to_layers(model, ids, torch.ones_like(ids), [3])
    assert caught.value.fix is not None and f"set {NORM_PATH_VARIABLE}" in caught.value.fix
    assert "open an issue" not in caught.value.fix
    monkeypatch.setenv(NORM_PATH_VARIABLE, "trunk.last_norm")
    captured = forward_to_layers(model, ids, torch.ones_like(ids), [2, 3])
    with torch.no_grad():
        reference = model.hidden_states(ids)
    assert torch.equal(captured[3], reference[3]) and torch.equal(captured[2], reference[2])


def test_the_environment_template_is_tried_first_then_the_known_ones(
    tiny_gpt2: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = list(tiny_gpt2.model.transformer.h)
    monkeypatch.setenv(LAYER_TEMPLATE_VARIABLE, "transformer.h.{num}")
    assert list(decoder_blocks(tiny_gpt2.model)) == known
    # Picking a part of each block shows the variable wins over the known template.
    monkeypatch.setenv(LAYER_TEMPLATE_VARIABLE, "transformer.h.{num}.mlp")
    assert list(decoder_blocks(tiny_gpt2.model)) == [block.mlp for block in known]
    # A template that fits nothing falls back to the known ones.
    monkeypatch.setenv(LAYER_TEMPLATE_VARIABLE, "backbone.blocks.{num}")
    assert list(decoder_blocks(tiny_gpt2.model)) == known
    assert "transformer.h.{num}" in LAYER_TEMPLATES


@pytest.mark.parametrize("template", ["transformer.h", "transformer.h.{i}", "transformer.h.{}"])
def test_a_malformed_environment_template_is_refused(monkeypatch: pytest.MonkeyPatch, template: str) -> None:
    monkeypatch.setenv(LAYER_TEMPLATE_VARIABLE, template)
    with pytest.raises(ModelError, match=r"not an attribute path with \{num\}"):
        decoder_blocks(torch.nn.Linear(2, 2))


def _rows_sharing_a_prefix(loaded: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Three right-padded conversations under one system prompt, of different lengths."""
    tokenizer = loaded.tokenizer
    system = (
        "<|im_start|>system\nYou are a careful assistant who answers briefly.<|im_end|>\n<|im_start|>user\n"
    )
    texts = [
        system + "How do I bake bread?<|im_end|>\n<|im_start|>assistant\nMix flour, water and yeast.",
        system + "Hi<|im_end|>\n",
        system + "Name a colour.<|im_end|>\n<|im_start|>assistant\nBlue.",
    ]
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(len(e) for e in encoded)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([e + [pad] * (width - len(e)) for e in encoded])
    attention = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in encoded])
    return ids, attention


def test_shared_prefix_is_found_and_leaves_every_row_a_token() -> None:
    shared = [3, 4, 5, 6, 7, 8]
    ids = torch.tensor([[*shared, 1, 1], [*shared, 1, 0], [*shared, 9, 9]])
    assert shared_prefix_length(ids, torch.ones_like(ids)) == 6
    # Identical rows: the shortest row still keeps one token of its own.
    same = torch.tensor([[*shared, 1], [*shared, 1]])
    assert shared_prefix_length(same, torch.tensor([[1] * 7, [1] * 6 + [0]])) == 5
    # One row, or too short a prefix to pay for its own pass: none.
    assert shared_prefix_length(ids[:1], torch.ones_like(ids[:1])) == 0
    short = torch.tensor([[3, 4, 5, 1], [3, 4, 5, 2]])
    assert shared_prefix_length(short, torch.ones_like(short)) == 0


def test_a_shared_prefix_gives_the_activations_of_separate_rows(any_tiny: LoadedModel) -> None:
    ids, attention = _rows_sharing_a_prefix(any_tiny)
    prefix = shared_prefix_length(ids, attention)
    assert prefix >= MIN_SHARED_PREFIX  # the test must exercise the cached path
    reference = _reference(any_tiny, ids, attention)
    hooks_before = _hook_counts(any_tiny.model)
    layers = list(range(any_tiny.num_layers + 1))
    shared = forward_to_layers(any_tiny.model, ids, attention, layers, prefix=prefix)
    plain = forward_to_layers(any_tiny.model, ids, attention, layers)
    real = attention.bool()
    for layer in layers:
        assert shared[layer].shape == reference[layer].shape
        # Padded positions may differ; every real token must match a separate forward pass.
        torch.testing.assert_close(shared[layer][real], reference[layer][real], rtol=1e-5, atol=1e-5)
        assert torch.equal(plain[layer], reference[layer])
    # Each row alone, unpadded, gives the same activations too.
    for row in range(ids.shape[0]):
        n = int(attention[row].sum())
        alone = _reference(any_tiny, ids[row : row + 1, :n], attention[row : row + 1, :n])
        for layer in layers:
            torch.testing.assert_close(shared[layer][row, :n], alone[layer][0], rtol=1e-5, atol=1e-5)
    assert _hook_counts(any_tiny.model) == hooks_before


def test_a_shared_prefix_longer_than_a_sliding_window_gives_the_same_activations() -> None:
    """Gemma 3 mixes sliding-window and full attention; its cache keeps only a window of the prefix."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        sliding_window=4,
        max_position_embeddings=256,
        layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
    )
    model = Gemma3ForCausalLM(config).eval()
    shared = list(range(10, 22))  # 12 tokens, three windows
    lengths = [17, 14, 15]
    ids = torch.tensor([[*shared, *range(40 + 10 * row, 45 + 10 * row)] for row in range(3)])
    attention = torch.tensor([[1] * n + [0] * (17 - n) for n in lengths])
    prefix = shared_prefix_length(ids, attention)
    assert prefix == 12
    layers = list(range(5))
    captured = forward_to_layers(model, ids, attention, layers, prefix=prefix)
    with torch.no_grad():
        for row, n in enumerate(lengths):
            alone = model(input_ids=ids[row : row + 1, :n], output_hidden_states=True).hidden_states
            for layer in layers:
                torch.testing.assert_close(captured[layer][row, :n], alone[layer][0], rtol=1e-5, atol=1e-5)
