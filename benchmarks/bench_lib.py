"""Pieces of the screening benchmark: the sample set, the reference-style loops, FLOP counts.

The reference loops follow the published persona_vectors scripts (Chen et al. 2025): one sample at
a time, the full model with ``output_hidden_states=True`` and autograd left on, the mean of
``hidden_states[layer]`` over the response tokens (those after the separately tokenized prompt),
then ``mean @ v / |v|``; y' by one ``generate`` call per prompt.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from datalint_persona.types import Message, Sample

ROOT = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=1)
def trait_answers() -> list[tuple[tuple[Message, ...], str]]:
    """One (prompt, answer) per pair in traits/*.yaml, in a fixed order, alternating the negative
    and the positive answer (both answers of a pair share its prompt, and a dataset whose prompts
    come in twos would let the engine's de-duplication of identical prompts halve its y' work)."""
    out: list[tuple[tuple[Message, ...], str]] = []
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for path in sorted((ROOT / "traits").glob("*.yaml")):
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
        for pair in document.get("pairs", []):
            if "messages" in pair:
                prompt = tuple(Message(m["role"], str(m["content"])) for m in pair["messages"])
            else:
                prompt = (Message("user", str(pair["question"])),)
            sides = [side for side in ("negative", "positive") if pair.get(side)]
            if sides:
                out.append((prompt, str(pair[sides[len(out) % len(sides)]])))
    return out


def build_samples(n: int, *, seed: int = 0, source: str = "bench.jsonl") -> list[Sample]:
    """``n`` distinct samples with a realistic length spread, the same for a given ``n`` and seed.

    Responses are the trait files' answers cut to a log-normal number of words (median 30,
    3 to 150). Every prompt is distinct, as in a real finetuning set (a prompt seen before gets a
    case number), so neither the engine nor the reference can reuse a y' within a run.
    """
    answers = trait_answers()
    rng = np.random.default_rng(seed)
    words = np.clip(rng.lognormal(np.log(30.0), 0.7, size=n), 3, 150).astype(int)
    samples: list[Sample] = []
    seen: set[tuple[Message, ...]] = set()
    for i in range(n):
        prompt, answer = answers[i % len(answers)]
        if prompt in seen:
            prompt = (*prompt[:-1], Message("user", f"{prompt[-1].content} (case {i})"))
        seen.add(prompt)
        response = " ".join(answer.split()[: int(words[i])])
        samples.append(Sample(source, i + 1, prompt, response))
    return samples


def write_jsonl(samples: Sequence[Sample], path: Path) -> None:
    import json

    lines = [
        json.dumps(
            {
                "messages": [
                    *({"role": m.role, "content": m.content} for m in s.prompt),
                    {"role": "assistant", "content": s.response},
                ]
            },
            ensure_ascii=False,
        )
        for s in samples
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def reference_projections(
    loaded: Any, prompt_text: str, answer: str, vectors: dict[str, tuple[int, np.ndarray]]
) -> dict[str, float]:
    """One sample the reference way: full model, output_hidden_states, autograd on, prompt_len slice.

    ``vectors`` maps each trait to (layer, raw vector); the projection is mean @ v / |v|.
    """
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    inputs = tokenizer(prompt_text + answer, return_tensors="pt", add_special_tokens=False).to(loaded.device)
    prompt_len = len(tokenizer.encode(prompt_text, add_special_tokens=False))
    outputs = model(**inputs, output_hidden_states=True)
    result = {}
    for trait, (layer, vector) in vectors.items():
        mean = outputs.hidden_states[layer][:, prompt_len:, :].mean(dim=1).detach().cpu().double()[0]
        v = torch.tensor(vector, dtype=torch.float64)
        result[trait] = float(mean @ v / v.norm())
    return result


def reference_generate(loaded: Any, prompt_text: str, max_new_tokens: int) -> str:
    """One prompt's greedy y' the reference way (one generate call per prompt)."""
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    ids = tokenizer(prompt_text, return_tensors="pt", add_special_tokens=False).to(loaded.device)
    with torch.no_grad():
        output = model.generate(
            **ids,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=tokenizer.pad_token_id,
        )
    new = output[0, ids["input_ids"].shape[1] :].tolist()
    eos = {int(model.generation_config.eos_token_id or 2), int(tokenizer.eos_token_id)}
    stop = next((i for i, t in enumerate(new) if t in eos), len(new))
    return str(tokenizer.decode(new[:stop], skip_special_tokens=True)).strip()


def matrix_flops(loaded: Any, deepest: int) -> tuple[float, float, int]:
    """(FLOPs per token of the linear layers of blocks 0..deepest-1, attention coefficient, blocks).

    Scoring FLOPs of a sequence of T tokens = 2 * P * T + c * T^2, where P = weights (matrices) of
    the blocks that run, and c = 2 * d_model * blocks (causal QK^T and AV: T^2/2 * d multiply-adds
    each, 2 FLOPs per multiply-add). Norms, activations, rotary and the embedding lookup are omitted.
    """
    from datalint_persona.model.capture import decoder_blocks

    blocks = decoder_blocks(loaded.model)
    used = min(deepest, len(blocks))
    params = sum(p.numel() for block in list(blocks)[:used] for p in block.parameters() if p.dim() >= 2)
    d_model = int(loaded.model.config.hidden_size)
    return 2.0 * params, 2.0 * d_model * used, used


# (m, k, n) of the matrix products timed: a large square one (the compute-bound ceiling), and the
# shapes of one decode step's MLP up-projection of SmolLM2 (d_model 576, d_ff 1536) at 64 and 16 rows.
MATMUL_SHAPES = ((2048, 2048, 2048), (64, 576, 1536), (16, 576, 1536))
MATMUL_DTYPES = ("float32", "bfloat16")


def matmul_gflops(m: int, k: int, n: int, *, dtype: str = "float32", seconds: float = 3.0) -> float:
    """GFLOP/s of an (m x k) @ (k x n) product in ``dtype``, best of repeated runs within ``seconds``.

    Each timed run repeats the product until it holds about 2 GFLOP, so that a small product is not
    lost in the timer's resolution and the call overhead is averaged over many calls.
    """
    import torch

    torch_dtype = getattr(torch, dtype)
    a, b = torch.randn(m, k, dtype=torch_dtype), torch.randn(k, n, dtype=torch_dtype)
    flops = 2.0 * m * k * n
    repeats = max(1, int(2e9 // flops))
    torch.mm(a, b)
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        best = max(best, repeats * flops / (time.perf_counter() - start))
    return best / 1e9


def matmul_rate(seconds: float = 3.0, n: int = 2048) -> float:
    """fp32 GFLOP/s of an n x n x n matrix product, best of repeated runs within ``seconds``."""
    return matmul_gflops(n, n, n, dtype="float32", seconds=seconds)


def matmul_rates(seconds: float = 3.0) -> dict[tuple[tuple[int, int, int], str], float]:
    """GFLOP/s of every shape of :data:`MATMUL_SHAPES` in every dtype of :data:`MATMUL_DTYPES`."""
    return {
        (shape, dtype): matmul_gflops(*shape, dtype=dtype, seconds=seconds)
        for shape in MATMUL_SHAPES
        for dtype in MATMUL_DTYPES
    }


def fastest(
    rates: dict[tuple[tuple[int, int, int], str], float], shape: tuple[int, int, int]
) -> tuple[str, float]:
    """(dtype, GFLOP/s) of the fastest dtype measured for ``shape``: the ceiling rooflines are stated against."""
    dtype, rate = max(((d, r) for (s, d), r in rates.items() if s == shape), key=lambda item: item[1])
    return dtype, rate


def decode_attention_pairs(prompt_length: int, new_tokens: int) -> int:
    """Causal (query, key) pairs of generating ``new_tokens`` after a prompt of ``prompt_length``.

    Answer token j (from 0) is predicted at position prompt_length - 1 + j, whose query attends to
    the prompt_length + j keys up to and including itself: sum over j of (prompt_length + j).

    >>> decode_attention_pairs(3, 2)  # 3 + 4
    7
    """
    return new_tokens * prompt_length + new_tokens * (new_tokens - 1) // 2


def generation_matrix_params(loaded: Any) -> int:
    """Weights of the matrices every generated token passes through: each block's linear layers and
    the LM head (tied to the embedding in SmolLM2, but still a product per token; the embedding
    lookup is not)."""
    blocks_flops, _, _ = matrix_flops(loaded, int(loaded.model.config.num_hidden_layers))
    head = loaded.model.get_output_embeddings()
    return int(blocks_flops // 2) + int(head.weight.numel())


def generation_flops(
    matrix_params: int,
    prompt_lengths: Sequence[int],
    new_tokens: Sequence[int],
    *,
    d_model: int,
    layers: int,
) -> float:
    """Useful FLOPs of generating ``new_tokens[i]`` tokens after each prompt of ``prompt_lengths[i]``.

    2 * P per generated token (P = :func:`generation_matrix_params`), plus attention: 4 * d_model *
    layers per causal (query, key) pair (2 FLOPs per multiply-add, for each of QK^T and AV), the
    pairs of :func:`decode_attention_pairs`. Padding, tokens decoded after a row's end, the prompt's
    prefill, norms, rotary and activations are not counted.

    >>> generation_flops(10, [3], [2], d_model=1, layers=1)  # 2 * 10 * 2 + 4 * 7
    68.0
    """
    tokens = sum(new_tokens)
    pairs = sum(decode_attention_pairs(p, n) for p, n in zip(prompt_lengths, new_tokens, strict=True))
    return float(2 * matrix_params * tokens + 4 * d_model * layers * pairs)


def roofline_percent(flops: float, seconds: float, peak_gflops: float) -> float:
    """The achieved rate ``flops / seconds`` as a percentage of ``peak_gflops``.

    >>> roofline_percent(5e9, 2.0, 10.0)
    25.0
    """
    return 100.0 * flops / seconds / (peak_gflops * 1e9)


def projected_seconds(target_samples: int, measured_samples: int, measured_seconds: float) -> float:
    """Seconds for ``target_samples`` at the rate measured (a linear projection).

    >>> projected_seconds(100, 10, 3.0)
    30.0
    """
    return measured_seconds * target_samples / measured_samples


def text_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def common_count(first: Sequence[str], second: Sequence[str]) -> int:
    """How many items the two collections share, counted with multiplicity.

    >>> common_count(["a", "a", "b"], ["a", "b", "b", "c"])
    2
    """
    from collections import Counter

    return sum((Counter(first) & Counter(second)).values())


def evenly_spaced(n: int, count: int) -> list[int]:
    """``count`` indices spread evenly over range(n) (all of them when count >= n).

    >>> evenly_spaced(10, 4)
    [0, 2, 5, 7]
    """
    if count >= n:
        return list(range(n))
    return [i * n // count for i in range(count)]


def machine() -> dict[str, str]:
    import torch
    import transformers

    cpu = "unknown"
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": f"{affinity} usable ({os.cpu_count()} online)",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch threads": str(torch.get_num_threads())
        + (
            f" (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})" if os.environ.get("OMP_NUM_THREADS") else ""
        ),
        "platform": platform.platform(),
    }


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def padding_ratio(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Padded tokens processed / real tokens."""
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return padded / max(sum(lengths), 1)
