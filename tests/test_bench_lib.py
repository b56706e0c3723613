"""The benchmark's own pieces: a deterministic sample set, the FLOP count, the reference projection."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from datalint_persona.model.chat import render_prompt
from datalint_persona.model.loading import LoadedModel
from datalint_persona.screening.scoring import Direction, project_responses

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_lib  # noqa: E402


def test_samples_are_deterministic_distinct_and_spread() -> None:
    first, again = bench_lib.build_samples(600), bench_lib.build_samples(600)
    assert first == again
    assert len({s.content_hash for s in first}) == 600
    words = [len(s.response.split()) for s in first]
    assert min(words) <= 10 and max(words) >= 80  # a realistic spread, not one length


def test_flop_count_matches_the_config(tiny_llama: LoadedModel) -> None:
    config = tiny_llama.model.config
    d, ff, heads, kv = (
        config.hidden_size,
        config.intermediate_size,
        config.num_attention_heads,
        config.num_key_value_heads,
    )
    head_dim = d // heads
    per_block = 2 * d * d + 2 * d * kv * head_dim + 3 * d * ff  # q, o; k, v; gate, up, down
    per_token, attention, blocks = bench_lib.matrix_flops(tiny_llama, 3)
    assert blocks == 3
    assert per_token == 2 * 3 * per_block
    assert attention == 2 * d * 3


def test_reference_projection_equals_the_engine(tiny_llama: LoadedModel) -> None:
    [sample] = bench_lib.build_samples(1)
    rng = np.random.default_rng(0)
    raw = rng.standard_normal(tiny_llama.hidden_size)
    engine, _ = project_responses(
        tiny_llama,
        [sample.prompt],
        [sample.response],
        [Direction("t", 2, raw / np.linalg.norm(raw))],
        max_tokens=4096,
    )
    prompt_text = render_prompt(tiny_llama.tokenizer, sample.prompt)
    reference = bench_lib.reference_projections(tiny_llama, prompt_text, sample.response, {"t": (2, raw)})
    assert abs(reference["t"] - engine[0, 0]) < 1e-5
