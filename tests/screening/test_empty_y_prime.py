"""An empty y' is a real answer: the model ended its turn at once. It is scored at the one token
that answer has, the end-of-turn marker the template puts after it, and runs count them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from conftest import TRAIT, load_tiny

from datalint_persona.model.chat import render_prompt
from datalint_persona.model.loading import LoadedModel
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.screening.engine import screen
from datalint_persona.types import Message
from screening.test_engine import _options, _unit, write_jsonl

RECORDS = [{"prompt": "Name a food.", "response": "Bread."}, {"prompt": "Say hello.", "response": "Hello!"}]


def _end_of_turn_activation(loaded: LoadedModel, prompt: tuple[Message, ...], layer: int) -> np.ndarray:
    """By hand: hidden_states[layer] at the first token after the prompt in the rendered
    conversation whose answer is empty."""
    turns = [{"role": m.role, "content": m.content} for m in prompt]
    prompt_text = loaded.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    full_text = loaded.tokenizer.apply_chat_template(
        [*turns, {"role": "assistant", "content": ""}], tokenize=False
    )
    assert full_text.startswith(prompt_text + "<|im_end|>")
    ids = loaded.tokenizer(full_text, add_special_tokens=False)["input_ids"]
    position = len(loaded.tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    assert ids[position] == 2  # <|im_end|>: the token the model generated
    with torch.no_grad():
        hidden = loaded.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[layer]
    return np.asarray(hidden[0, position].double().numpy())


def test_an_empty_y_prime_is_scored_at_its_end_of_turn_and_counted(
    tiny_llama_dir: Path, vectors_dir: Path, tmp_path: Path
) -> None:
    loaded = load_tiny(tiny_llama_dir)  # a private copy: its generation config is changed below
    first = (Message("user", "Name a food."),)
    ids = loaded.tokenizer(render_prompt(loaded.tokenizer, first), add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        first_token = int(loaded.model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
    # The first token it would answer with ends the turn: its y' is empty.
    loaded.model.generation_config.eos_token_id = [2, first_token]
    data = write_jsonl(tmp_path / "train.jsonl", RECORDS)
    options = _options(Path(tiny_llama_dir), vectors_dir, tmp_path)
    result = screen([str(data)], options, max_new_tokens=6, loaded_model=loaded)
    empty, other = result.samples
    assert empty.y_prime == "" and other.y_prime != ""
    [trait_score] = empty.scores
    unit = _unit(PersonaVector.load(vectors_dir / f"{TRAIT}.safetensors"), trait_score.layer)
    expected = _end_of_turn_activation(loaded, first, trait_score.layer) @ unit
    assert abs(trait_score.projection_y_prime - expected) < 1e-4
    assert (
        "1 of 2 y' were empty: the model ended its turn at once. Each was scored at its end-of-turn token."
        in (result.warnings)
    )
    # The same value from the projection cache on a second run.
    again = screen([str(data)], options, max_new_tokens=6, loaded_model=loaded)
    assert again.cache_stats["projections_reused"] == 4
    assert again.samples[0].scores[0].projection_y_prime == trait_score.projection_y_prime
