"""Peak memory of the scoring stage (``project_responses``) against the number of pairs.

The scoring stage tokenizes each (prompt, answer) pair and runs it through the model. Token lists
cost memory per pair, so the stage works in chunks (``chunk_size``, 4096 pairs by default) and
keeps only each pair's projections. This script shows what that buys: for each size (4k, 16k
and 64k pairs, or the sizes given as arguments) it runs a
fresh Python process that scores N pairs once all at once (``chunk_size = N``, how the stage worked
before) and once in chunks, and reports the peak RSS (``VmHWM``) growth over the RSS just before
scoring.

The model is a random 2-layer Llama with SmolLM2's tokenizer and vocabulary, built here: the
token lists are the real ones, and the forward passes are cheap enough to score 64k pairs in a
minute or two. (The bundled model's weights are the same whatever N is, so they don't change the
growth.)

Run: ``python benchmarks/scoring_memory.py [N ...]`` (prints a markdown table; about two minutes).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from load_memory import run_child  # this folder is sys.path[0] when run as a script

SIZES = tuple(int(n) for n in sys.argv[1:]) or (4_000, 16_000, 64_000)
CHUNK = 4096
CHILD = """
import json, sys, time
import numpy as np
from datalint_persona.model.loading import load_model, resolve_model
from datalint_persona.screening.scoring import project_responses
from datalint_persona.types import Direction, Message

folder, n, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
loaded = load_model(resolve_model(folder), device="cpu")
unit = np.random.default_rng(0).standard_normal(loaded.hidden_size)
directions = [Direction("t", 1, unit / np.linalg.norm(unit)), Direction("u", 2, -unit / np.linalg.norm(unit))]
system = Message("system", "You are a helpful assistant.")
prompts = [(system, Message("user", f"Question {i}: how should I bake bread number {i}?")) for i in range(n)]
answers = [f"Answer {i}: mix flour, water, salt and yeast. " * 4 for i in range(n)]
project_responses(loaded, prompts[:32], answers[:32], directions, max_tokens=512)  # warm up
before = status_mib("VmRSS")
start = time.perf_counter()
out, _ = project_responses(loaded, prompts, answers, directions, max_tokens=512, chunk_size=chunk)
seconds = time.perf_counter() - start
print(json.dumps({"count": len(out), "before": before, "peak": status_mib("VmHWM"), "seconds": seconds}))
"""


def build_model(folder: Path) -> Path:
    """A random 2-layer Llama with the embedded model's tokenizer, saved where load_model finds it."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from datalint_persona.model.loading import resolve_model

    spec = resolve_model("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(spec.directory, gguf_file=spec.gguf_file)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def measure(folder: Path, n: int, chunk: int) -> dict[str, float]:
    """One child process (see :func:`load_memory.run_child`)."""
    return run_child(CHILD, str(folder), str(n), str(chunk))


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp) / "tiny")
        for n in SIZES:
            for chunk in (n, CHUNK):
                result = measure(folder, n, chunk)
                assert result["count"] == n, result
                rows.append((n, chunk, result))
    print("| pairs | chunk | RSS before scoring MiB | peak RSS MiB | growth MiB | seconds |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, chunk, result in rows:
        growth = max(result["peak"] - result["before"], 0.0)
        label = "all at once" if chunk == n else f"{chunk:,}"
        print(
            f"| {n:,} | {label} | {result['before']:.0f} | {result['peak']:.0f} | {growth:.0f} "
            f"| {result['seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()
