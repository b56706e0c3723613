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


def _block_matrix_params(model: LoadedModel) -> tuple[int, int]:
    """d_model, and the weights of one block's matrices counted from the config by hand."""
    config = model.model.config
    d, ff = config.hidden_size, config.intermediate_size
    head_dim = d // config.num_attention_heads
    kv = config.num_key_value_heads
    return d, 2 * d * d + 2 * d * kv * head_dim + 3 * d * ff  # q, o; k, v; gate, up, down


def test_flop_count_matches_the_config(tiny_llama: LoadedModel) -> None:
    d, per_block = _block_matrix_params(tiny_llama)
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


def test_decode_attention_pairs_counts_each_step_by_enumeration() -> None:
    # Independent count: answer token j is predicted by the query at position p - 1 + j, which
    # sees every key position 0 .. p - 1 + j.
    for prompt, new in ((1, 1), (3, 2), (17, 9), (40, 0), (5, 96)):
        expected = sum(1 for j in range(new) for key in range(prompt + j) if key <= prompt - 1 + j)
        assert bench_lib.decode_attention_pairs(prompt, new) == expected


def test_generation_flops_against_a_per_token_sum(tiny_llama: LoadedModel) -> None:
    config = tiny_llama.model.config
    layers, vocab = config.num_hidden_layers, config.vocab_size
    d, per_block = _block_matrix_params(tiny_llama)
    params = bench_lib.generation_matrix_params(tiny_llama)
    assert params == layers * per_block + vocab * d  # all blocks and the (tied) LM head
    prompts, news = [4, 10, 7], [3, 0, 5]
    expected = 0.0
    for prompt, new in zip(prompts, news, strict=True):
        for j in range(new):  # one forward per generated token: matrices, then attention
            expected += 2 * params + layers * (2 * d * (prompt + j) + 2 * d * (prompt + j))
    flops = bench_lib.generation_flops(params, prompts, news, d_model=d, layers=layers)
    assert flops == expected


def test_roofline_percent_and_projection() -> None:
    # 3e11 FLOPs in 2 s is 150 GFLOP/s; against 600 GFLOP/s that is a quarter.
    assert abs(bench_lib.roofline_percent(3e11, 2.0, 600.0) - 25.0) < 1e-12
    assert bench_lib.projected_seconds(10_000, 250, 50.0) == 2000.0
    rates = {((8, 8, 8), "float32"): 10.0, ((8, 8, 8), "bfloat16"): 30.0, ((4, 4, 4), "float32"): 99.0}
    assert bench_lib.fastest(rates, (8, 8, 8)) == ("bfloat16", 30.0)
    assert bench_lib.evenly_spaced(5, 10) == [0, 1, 2, 3, 4]
    picked = bench_lib.evenly_spaced(256, 12)
    assert (
        len(set(picked)) == 12
        and picked == sorted(picked)
        and picked[0] == 0
        and max(picked) > 256 * 10 // 12
    )


def test_matmul_rate_is_a_plausible_rate() -> None:
    # A 64x64x64 product is 524288 FLOPs; any CPU runs it in well under a second, and no CPU
    # core reaches 100 TFLOP/s.
    rate = bench_lib.matmul_gflops(64, 64, 64, dtype="float32", seconds=0.05)
    assert 0.01 < rate < 1e5
