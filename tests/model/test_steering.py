"""Steering hooks on the tiny Llama: exact additions, alpha 0 changes nothing, hooks always removed."""

from __future__ import annotations

import pytest
import torch

from datalint_persona.errors import ModelError, PersonaLintError
from datalint_persona.extraction.layer_selection import choose_steering_layer, steered_answers
from datalint_persona.model.backends import GenerationSettings
from datalint_persona.model.capture import forward_to_layers
from datalint_persona.model.chat import render_prompt
from datalint_persona.model.loading import LoadedModel
from datalint_persona.model.steering import steering
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.types import Message

QUESTIONS = ["How do I bake bread?", "Say hello.", "What should I do today with my friends?"]


def _hidden(loaded: LoadedModel, text: str) -> tuple[torch.Tensor, ...]:
    ids = loaded.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return loaded.model(input_ids=ids, output_hidden_states=True).hidden_states


@pytest.mark.parametrize("layer", [0, 1, 3])
def test_steering_adds_alpha_v_to_exactly_that_layer(tiny_llama: LoadedModel, layer: int) -> None:
    text = render_prompt(tiny_llama.tokenizer, (Message("user", QUESTIONS[0]),))
    ids = tiny_llama.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    vector = torch.randn(tiny_llama.hidden_size, generator=torch.Generator().manual_seed(layer))
    plain = _hidden(tiny_llama, text)
    captured_plain = forward_to_layers(tiny_llama.model, ids, torch.ones_like(ids), [layer])
    with steering(tiny_llama.model, layer, vector, 0.5):
        steered = _hidden(tiny_llama, text)
        captured = forward_to_layers(tiny_llama.model, ids, torch.ones_like(ids), [layer])
    for earlier in range(layer):
        assert torch.equal(steered[earlier], plain[earlier])
    # What the screening capture sees at the steered layer is the stream plus exactly alpha * v.
    torch.testing.assert_close(
        captured[layer] - captured_plain[layer], (0.5 * vector).expand_as(captured[layer]), rtol=0, atol=1e-5
    )
    # Everything downstream changes. (transformers records output_hidden_states[layer] itself
    # before forward hooks run, so the change shows there from layer + 1 on.)
    assert not torch.allclose(steered[layer + 1], plain[layer + 1])


def test_alpha_zero_reproduces_unsteered_generation_exactly(
    tiny_llama: LoadedModel, calibrated_vector: PersonaVector
) -> None:
    settings = GenerationSettings(max_new_tokens=6)
    zero = steered_answers(tiny_llama, QUESTIONS, calibrated_vector, 2, 0.0, settings, batch_size=2)
    from datalint_persona.screening.generation import generate_y_prime

    plain, _ = generate_y_prime(
        tiny_llama, [(Message("user", q),) for q in QUESTIONS], settings, batch_size=2
    )
    assert zero == [g.text for g in plain]
    strong = steered_answers(tiny_llama, QUESTIONS, calibrated_vector, 2, 50.0, settings, batch_size=2)
    assert strong != zero  # a large push does change what the model says


def _hook_count(loaded: LoadedModel) -> int:
    return sum(len(b._forward_pre_hooks) + len(b._forward_hooks) for b in loaded.model.model.layers)


@pytest.mark.parametrize("layer", [0, 2])
def test_hooks_are_removed_even_when_the_body_raises(tiny_llama: LoadedModel, layer: int) -> None:
    before = _hook_count(tiny_llama)
    with (
        pytest.raises(RuntimeError, match="boom"),
        steering(tiny_llama.model, layer, torch.ones(tiny_llama.hidden_size), 1.0),
    ):
        assert _hook_count(tiny_llama) == before + 1
        raise RuntimeError("boom")
    assert _hook_count(tiny_llama) == before


@pytest.mark.parametrize(
    ("mode", "steers_prefill", "steers_decoding"),
    [("all", True, True), ("prompt", True, False), ("response", False, True)],
)
def test_position_modes_split_prefill_from_decoding(
    tiny_llama: LoadedModel, mode: str, steers_prefill: bool, steers_decoding: bool
) -> None:
    """A prefill pass has several new positions; a decoding pass (with a KV cache) has one."""
    vector = torch.ones(tiny_llama.hidden_size)
    prefill, decoding = torch.tensor([[5, 6, 7, 8]]), torch.tensor([[9]])
    for ids, expected in ((prefill, steers_prefill), (decoding, steers_decoding)):
        plain = forward_to_layers(tiny_llama.model, ids, torch.ones_like(ids), [1])[1]
        with steering(tiny_llama.model, 1, vector, 2.0, positions=mode):  # type: ignore[arg-type]
            steered = forward_to_layers(tiny_llama.model, ids, torch.ones_like(ids), [1])[1]
        assert torch.allclose(steered - plain, 2.0 * vector.expand_as(plain)) is expected
        assert torch.equal(steered, plain) is not expected


def test_steering_the_last_layer_is_refused(tiny_llama: LoadedModel) -> None:
    with (
        pytest.raises(ModelError, match="steerable layers are 0..3"),
        steering(tiny_llama.model, tiny_llama.num_layers, torch.ones(tiny_llama.hidden_size), 1.0),
    ):
        pass


def test_choose_steering_layer() -> None:
    rows = [
        {"layer": 4, "trait_mean": 60.0},
        {"layer": 8, "trait_mean": 60.0},
        {"layer": 12, "trait_mean": None},
    ]
    assert choose_steering_layer(rows) == 4
    with pytest.raises(PersonaLintError, match="no trait score"):
        choose_steering_layer([{"layer": 4, "trait_mean": None}])
