"""Prompts longer than the context: one cut for generation and scoring, with a warning.

A prompt that leaves no room for y' in the model's context loses its oldest text (the system
turn and the template stay); y' is generated from the cut prompt, and y and y' are both scored
under it. Before, generation fed the whole prompt (an IndexError on learned positions) while
scoring cut the prompt's head, so y' was scored under another prompt than it came from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TRAIT, reference_means

from datalint_persona.errors import PersonaLintError
from datalint_persona.model.backends import GenerationSettings
from datalint_persona.model.backends.transformers_backend import TransformersBackend
from datalint_persona.model.chat import render_prompt
from datalint_persona.model.loading import LoadedModel, load_model, resolve_model
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.screening.engine import screen
from datalint_persona.types import Message
from screening.test_engine import _options, _unit, write_jsonl

CONTEXT = 128
MAX_NEW = 8
LONG_PROMPT = "Tell me everything: " + " ".join(f"fact {i} about the quick brown fox." for i in range(40))


@pytest.fixture(scope="module")
def short_context(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> LoadedModel:
    """The tiny Llama's weights (so the same identity, and the fixture vectors apply) with a
    128-token context."""
    folder = tmp_path_factory.mktemp("short-context") / "tiny-llama-128"
    shutil.copytree(tiny_llama_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = CONTEXT
    (folder / "config.json").write_text(json.dumps(config))
    return load_model(resolve_model(str(folder)), device="cpu")


def _reference_within(
    loaded: LoadedModel, prompt: tuple[Message, ...], response: str, layer: int
) -> np.ndarray:
    """Mean response activation at ``layer`` over the first ``CONTEXT`` tokens of x + y, by hand:
    the whole prompt, then as much of the response as fits."""
    turns = [{"role": m.role, "content": m.content} for m in prompt]
    prompt_text = loaded.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    full_text = loaded.tokenizer.apply_chat_template(
        [*turns, {"role": "assistant", "content": response}], tokenize=False
    )
    start, end = len(prompt_text), len(prompt_text) + len(response)
    assert full_text[start:end] == response
    encoding = loaded.tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    prompt_ids = loaded.tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    assert encoding["input_ids"][: len(prompt_ids)] == prompt_ids  # the prompt is scored whole
    mask = np.array([a < end and b > start for a, b in encoding["offset_mapping"]])[:CONTEXT]
    ids = torch.tensor([encoding["input_ids"][:CONTEXT]])
    with torch.no_grad():
        hidden = loaded.model(input_ids=ids, output_hidden_states=True).hidden_states[layer]
    return np.asarray(hidden[0].double().numpy()[mask].mean(axis=0))


def _greedy(loaded: LoadedModel, prompt: str, max_new: int) -> str:
    ids = loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    new: list[int] = []
    for _ in range(max_new):
        with torch.no_grad():
            token = int(loaded.model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
        if token == 2:
            break
        new.append(token)
    return str(loaded.tokenizer.decode(new, skip_special_tokens=True)).strip()


def test_a_long_prompt_is_cut_once_for_generation_and_scoring(
    short_context: LoadedModel, vectors_dir: Path, tmp_path: Path
) -> None:
    tokenizer = short_context.tokenizer
    full = (Message("user", LONG_PROMPT),)
    assert len(tokenizer(render_prompt(tokenizer, full), add_special_tokens=False)["input_ids"]) > 3 * CONTEXT
    data = write_jsonl(
        tmp_path / "train.jsonl",
        [{"prompt": LONG_PROMPT, "response": "Bread."}, {"prompt": "Name a food.", "response": "Bread."}],
    )
    options = _options(Path(short_context.spec.directory), vectors_dir, tmp_path, cache_dir=None)
    result = screen([str(data)], options, max_new_tokens=MAX_NEW, loaded_model=short_context)
    budget = CONTEXT - MAX_NEW
    [warning] = [w for w in result.warnings if "prompt(s) were longer" in w]
    assert warning.startswith(f"1 prompt(s) were longer than the {budget} tokens left beside y'")
    long_score, short_score = result.samples
    assert long_score.sample.prompt == full  # the report keeps the data as it is
    # The cut prompt, found by hand: the longest tail of the question that fits the budget.
    cut = next(
        (Message("user", LONG_PROMPT[start:]),)
        for start in range(len(LONG_PROMPT))
        if len(
            tokenizer(
                render_prompt(tokenizer, (Message("user", LONG_PROMPT[start:]),)), add_special_tokens=False
            )["input_ids"]
        )
        <= budget
    )
    rendered = render_prompt(tokenizer, cut)
    assert (
        len(tokenizer(rendered, add_special_tokens=False)["input_ids"]) > budget - 8
    )  # not cut more than needed
    # y' is the model's answer to the cut prompt, and both answers are scored under it.
    assert long_score.y_prime == _greedy(short_context, rendered, MAX_NEW)
    vector = PersonaVector.load(vectors_dir / f"{TRAIT}.safetensors")
    [trait_score] = long_score.scores
    unit = _unit(vector, trait_score.layer)
    y = reference_means(short_context, cut, "Bread.")[trait_score.layer] @ unit
    y_prime = _reference_within(short_context, cut, long_score.y_prime, trait_score.layer) @ unit
    assert abs(trait_score.projection_y - y) < 1e-4
    assert abs(trait_score.projection_y_prime - y_prime) < 1e-4
    # The short prompt is untouched.
    short = (Message("user", "Name a food."),)
    assert short_score.y_prime == _greedy(short_context, render_prompt(tokenizer, short), MAX_NEW)


def test_the_backend_refuses_a_prompt_beyond_the_context_with_a_clear_error(
    short_context: LoadedModel,
) -> None:
    rendered = render_prompt(short_context.tokenizer, (Message("user", LONG_PROMPT),))
    backend = TransformersBackend(short_context)
    with pytest.raises(PersonaLintError, match=f"exceeds the model's context of {CONTEXT} tokens"):
        list(backend.generate([rendered], GenerationSettings(max_new_tokens=MAX_NEW), batch_size=2))


def test_no_room_for_a_prompt_is_a_config_error(
    short_context: LoadedModel, vectors_dir: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "Hi", "response": "Hello."}])
    options = _options(Path(short_context.spec.directory), vectors_dir, tmp_path, cache_dir=None)
    with pytest.raises(PersonaLintError, match="--max-new-tokens 128 leaves no room for a prompt"):
        screen([str(data)], options, max_new_tokens=CONTEXT, loaded_model=short_context)
