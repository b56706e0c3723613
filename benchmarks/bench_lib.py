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


def matmul_rate(seconds: float = 3.0, n: int = 2048) -> float:
    """fp32 GFLOP/s of an n x n x n matrix product, best of repeated runs within ``seconds``."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2.0 * n**3 / (time.perf_counter() - start))
    return best / 1e9


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
        "torch threads": str(torch.get_num_threads()),
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
