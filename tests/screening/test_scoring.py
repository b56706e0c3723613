"""Projections onto unit vectors: batched against per-sample, and against plain numpy."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from datalint_persona.model.chat import EncodedPair, encode_pair
from datalint_persona.model.loading import LoadedModel
from datalint_persona.screening.projection_cache import ProjectionCache
from datalint_persona.screening.scoring import Direction, ScoringStats, project_pairs, project_responses
from datalint_persona.types import Message, RecordedProjections, token_digest

PROMPTS = [
    (Message("user", "Hi"),),
    (Message("system", "Be brief."), Message("user", "How do I bake bread? Tell me every single step.")),
    (Message("user", "Code?"),),
]
RESPONSES = [
    "Yo.",
    "Mix flour, water, salt and yeast, knead it, let it rise, shape it and bake it. " * 5,
    "def add(a, b):\n    return a + b\n",
]


def _directions(loaded: LoadedModel, seed: int = 0) -> list[Direction]:
    rng = np.random.default_rng(seed)
    directions = []
    for trait, layer in [("a", 1), ("b", 3), ("c", 1), ("d", loaded.num_layers)]:
        raw = rng.standard_normal(loaded.hidden_size)
        directions.append(Direction(trait, layer, raw / np.linalg.norm(raw)))
    return directions


def _numpy_projection(
    loaded: LoadedModel, prompt: tuple[Message, ...], response: str, direction: Direction
) -> float:
    pair = encode_pair(loaded.tokenizer, prompt, response, max_tokens=4096)
    ids = torch.tensor([pair.input_ids])
    with torch.no_grad():
        hidden = loaded.model(input_ids=ids, output_hidden_states=True).hidden_states[direction.layer]
    mean = hidden[0].numpy()[np.array(pair.response_mask)].astype(np.float64).mean(axis=0)
    return float(np.dot(mean, direction.unit))


def test_batched_projections_equal_per_sample_and_numpy(any_tiny: LoadedModel) -> None:
    directions = _directions(any_tiny)
    pairs = [
        encode_pair(any_tiny.tokenizer, p, r, max_tokens=4096)
        for p, r in zip(PROMPTS, RESPONSES, strict=True)
    ]
    batched = project_pairs(any_tiny, pairs, directions, batch_size=8, token_budget=10**6)
    single = project_pairs(any_tiny, pairs, directions, batch_size=1)
    assert batched.shape == (len(pairs), len(directions))
    np.testing.assert_allclose(batched, single, atol=1e-5, rtol=0)
    for i, (prompt, response) in enumerate(zip(PROMPTS, RESPONSES, strict=True)):
        for k, direction in enumerate(directions):
            assert abs(batched[i, k] - _numpy_projection(any_tiny, prompt, response, direction)) < 1e-5
    # Columns at the same layer are not mixed up: a and c (both layer 1) differ.
    assert not np.allclose(batched[:, 0], batched[:, 2])


def test_project_responses_reports_truncation_and_scores_empty_at_its_end_of_turn(
    tiny_llama: LoadedModel,
) -> None:
    directions = _directions(tiny_llama)[:2]
    projections, truncated = project_responses(
        tiny_llama,
        [PROMPTS[0], PROMPTS[1], PROMPTS[0]],
        ["Yo.", RESPONSES[1], ""],
        directions,
        max_tokens=45,
        batch_size=2,
    )
    assert truncated == [False, True, False]
    # An empty answer is scored at the end-of-turn token the template puts after it, by hand:
    turns = [{"role": m.role, "content": m.content} for m in PROMPTS[0]]
    prompt_text = tiny_llama.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    position = len(tiny_llama.tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    ids = tiny_llama.tokenizer(prompt_text + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert ids[position] == 2
    with torch.no_grad():
        hidden = tiny_llama.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    for k, direction in enumerate(directions):
        end_of_turn = hidden[direction.layer][0, position].double().numpy()
        assert abs(projections[2, k] - float(end_of_turn @ direction.unit)) < 1e-5
    # The truncated row equals a projection of the kept tokens, computed by hand.
    pair = encode_pair(tiny_llama.tokenizer, PROMPTS[1], RESPONSES[1], max_tokens=45)
    assert len(pair.input_ids) == 45
    ids = torch.tensor([pair.input_ids])
    with torch.no_grad():
        hidden = tiny_llama.model(input_ids=ids, output_hidden_states=True).hidden_states
    for k, direction in enumerate(directions):
        mean = hidden[direction.layer][0][torch.tensor(pair.response_mask)].double().mean(0).numpy()
        assert abs(projections[1, k] - float(mean @ direction.unit)) < 1e-5


def _recording(pair: EncodedPair, directions: list[Direction], values: list[float]) -> RecordedProjections:
    """A recording of exactly ``pair``'s prompt and response tokens."""
    fed = pair.input_ids[: pair.needed_length]
    return RecordedProjections(
        token_digest(fed),
        len(fed),
        pair.response_mask.index(True),
        tuple(d.key for d in directions),
        tuple(values),
    )


def test_a_matching_recording_replaces_the_forward_pass_and_a_mismatch_falls_back(
    tiny_llama: LoadedModel,
) -> None:
    directions = _directions(tiny_llama)
    prompt, response = PROMPTS[0], RESPONSES[0]
    pair = encode_pair(tiny_llama.tokenizer, prompt, response, max_tokens=4096)
    values = [0.5, -1.25, 2.0, 3.5]  # not what the model gives: shows which path ran
    forward, _ = project_responses(tiny_llama, [prompt], [response], directions, max_tokens=4096)
    assert not np.allclose(forward[0], values)

    # Tokens and directions match: the recorded values are used, and no forward pass runs.
    stats = ScoringStats()
    used, _ = project_responses(
        tiny_llama,
        [prompt],
        [response],
        directions,
        max_tokens=4096,
        recorded=[_recording(pair, directions, values)],
        stats=stats,
    )
    assert used[0].tolist() == values
    assert stats.as_dict() == {
        "projections_reused": 0,
        "y_prime_from_generation": 1,
        "pairs_forwarded": 0,
        "tokens_run": 0,
        "attention_pairs_run": 0,
    }

    # Anything else differs (other tokens than the text re-tokenizes to, another span or length,
    # other directions): the pair runs through the model.
    good = _recording(pair, directions, values)
    ids = list(pair.input_ids[: good.n_tokens])
    ids[-1] = (ids[-1] + 1) % len(tiny_llama.tokenizer)
    for recording in (
        dataclasses.replace(good, tokens_sha256=token_digest(ids)),
        dataclasses.replace(good, response_start=good.response_start + 1),
        dataclasses.replace(good, n_tokens=good.n_tokens - 1),
        dataclasses.replace(good, direction_keys=good.direction_keys[::-1]),
    ):
        stats = ScoringStats()
        fallback, _ = project_responses(
            tiny_llama, [prompt], [response], directions, max_tokens=4096, recorded=[recording], stats=stats
        )
        np.testing.assert_array_equal(fallback, forward)
        assert stats.forwarded == 1 and stats.from_generation == 0


def test_a_recording_is_not_used_for_a_truncated_pair(tiny_llama: LoadedModel) -> None:
    directions = _directions(tiny_llama)
    prompt, response = PROMPTS[1], RESPONSES[1]
    full = encode_pair(tiny_llama.tokenizer, prompt, response, max_tokens=4096)
    cut = full.needed_length - 5
    stats = ScoringStats()
    project_responses(
        tiny_llama,
        [prompt],
        [response],
        directions,
        max_tokens=cut,
        recorded=[_recording(full, directions, [0.0] * len(directions))],
        stats=stats,
    )
    assert stats.forwarded == 1 and stats.from_generation == 0


def test_chunks_give_the_same_projections_cache_rows_and_progress(
    tiny_llama: LoadedModel, tmp_path: Path
) -> None:
    directions = _directions(tiny_llama)
    prompts = [PROMPTS[i % 3] for i in range(7)]
    responses = [f"Answer number {i}." for i in range(7)]
    recorded: list[RecordedProjections | None] = [None] * 7
    pair = encode_pair(tiny_llama.tokenizer, prompts[3], responses[3], max_tokens=4096)
    recorded[3] = _recording(pair, directions, [1.0, 2.0, 3.0, 4.0])
    whole, _ = project_responses(
        tiny_llama, prompts, responses, directions, max_tokens=4096, recorded=recorded, chunk_size=100
    )
    seen: list[tuple[str, int, int]] = []
    stats = ScoringStats()
    cache = ProjectionCache(tmp_path)
    try:
        chunked, _ = project_responses(
            tiny_llama,
            prompts,
            responses,
            directions,
            max_tokens=4096,
            recorded=recorded,
            cache=cache,
            stats=stats,
            chunk_size=2,
            progress=lambda *event: seen.append(event),
        )
    finally:
        cache.close()
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)
    assert chunked[3].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert (stats.forwarded, stats.from_generation) == (6, 1)
    done = [event[1] for event in seen]
    assert {event[2] for event in seen} == {7} and done == sorted(done) and done[0] == 0 and done[-1] == 7
    # Every chunk was committed: a second call reads all seven from the cache.
    again_stats = ScoringStats()
    cache = ProjectionCache(tmp_path)
    try:
        again, _ = project_responses(
            tiny_llama, prompts, responses, directions, max_tokens=4096, cache=cache, stats=again_stats
        )
    finally:
        cache.close()
    assert again_stats.reused == 7 and again_stats.forwarded == 0
    np.testing.assert_array_equal(again, chunked)
