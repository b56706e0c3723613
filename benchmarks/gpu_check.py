"""A prepared GPU check: a randomly initialised model of a real 7B-class shape, in bf16 on CUDA.

No weights are downloaded: the model is built from the configuration written below (Qwen2.5-7B's
shape), with random weights, and a small byte-level tokenizer trained here. The check measures

- y' generation throughput (the engine's transformers backend) at several batch sizes;
- scoring throughput (the engine's ``project_pairs``: hooks, prefix KV sharing, projection);
- both against a roofline: the bf16 matrix-product rate measured in the same run;
- peak GPU memory;

and checks that the hooks, and the shared-prefix KV path, agree with ``output_hidden_states``
on the device. It writes its table to ``benchmarks/GPU-RESULTS.md`` and stops adding batch sizes
once it nears its time budget (8 minutes in all).

    python benchmarks/gpu_check.py             # on a CUDA machine
    python benchmarks/gpu_check.py --dry-run   # tiny config, on the CPU (CI runs this)

The random weights' rows for tokens the small tokenizer lacks (and for the end-of-turn token)
are zeroed, so greedy decoding always picks a real token and every y' runs to its token budget:
the work per batch is fixed, and the full vocabulary's LM head still runs at every step.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Qwen2.5-7B-Instruct's architecture (its config.json), written out: nothing is downloaded.
QWEN25_7B = {
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}
# The same architecture, small enough for a CPU in seconds.
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1024,
    "max_position_embeddings": 2048,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "How do I bake bread? Mix flour, water and yeast, knead it, let it rise, then bake it hot.",
    "Write a function that adds two numbers: def add(a, b): return a + b",
    "Thank you for your help. You are welcome; good morning and good night.",
    "The committee reviewed the proposal, asked for a revised budget and set a date in spring.",
    "Explain why the sky is blue: sunlight scatters off air molecules, blue light the most.",
]
BUDGET_S = 8 * 60


@dataclass(frozen=True)
class Plan:
    """What one run measures: the model's shape, the device, and the workloads' sizes."""

    name: str
    config: dict[str, Any]
    device: str
    batch_sizes: tuple[int, ...]
    max_new_tokens: int
    prompt_words: int
    score_pairs: int
    response_words: int
    matmul_size: int


GPU_PLAN = Plan("Qwen2.5-7B shape, random weights", QWEN25_7B, "cuda", (1, 8, 32, 64), 64, 48, 256, 200, 8192)
DRY_PLAN = Plan("tiny Qwen2 (dry run)", TINY, "cpu", (1, 4), 6, 12, 8, 20, 256)


def build_tokenizer() -> Any:
    """A byte-level BPE with a ChatML template, trained on :data:`CORPUS` (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(CORPUS * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(plan: Plan, tokenizer: Any) -> Any:
    """The random bf16 model on ``plan.device``, wrapped as the engine's ``LoadedModel``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from datalint_persona.model.loading import LoadedModel, ModelSpec

    config = Qwen2Config(
        **plan.config,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="bfloat16",
    )
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(plan.device):  # weights are created where they run: no 15 GB copy
            model = Qwen2ForCausalLM(config)
    finally:
        torch.set_default_dtype(default_dtype)
    with torch.no_grad():
        # Tokens the tokenizer lacks, and the end of turn, never win a greedy step (see the docstring).
        model.lm_head.weight[len(tokenizer) :] = 0
        model.lm_head.weight[tokenizer.eos_token_id] = 0
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()  # type: ignore[no-untyped-call]
    spec = ModelSpec(name=f"random-{plan.name}", kind="local", directory="")
    return LoadedModel(spec=spec, identity=f"random:{plan.name}", model=model, tokenizer=tokenizer)


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, work: Callable[[], Any]) -> tuple[Any, float]:
    synchronize(device)
    start = time.perf_counter()
    out = work()
    synchronize(device)
    return out, time.perf_counter() - start


def matmul_rate(plan: Plan) -> float:
    """Measured bf16 FLOP/s of one square matrix product (the roofline's compute roof)."""
    import torch

    n = plan.matmul_size
    a = torch.randn(n, n, dtype=torch.bfloat16, device=plan.device)
    b = torch.randn(n, n, dtype=torch.bfloat16, device=plan.device)
    a @ b  # warm-up
    repeats = 20 if plan.device.startswith("cuda") else 3
    _, seconds = timed(plan.device, lambda: [a @ b for _ in range(repeats)])
    return 2 * n**3 * repeats / seconds


def words(count: int, offset: int) -> str:
    vocabulary = " ".join(CORPUS).split()
    return " ".join(vocabulary[(offset * 7 + i) % len(vocabulary)] for i in range(count))


def block_parameters(model: Any) -> int:
    """Parameters of one decoder block (every block has the same shape)."""
    return sum(p.numel() for p in model.model.layers[0].parameters())


def generation_rows(plan: Plan, loaded: Any, rate: float, deadline: float) -> list[dict[str, Any]]:
    """y' throughput per batch size, with the engine's transformers backend (greedy)."""
    from datalint_persona.model.backends import GenerationSettings
    from datalint_persona.screening.generation import generate_y_prime
    from datalint_persona.types import Message

    settings = GenerationSettings(max_new_tokens=plan.max_new_tokens, temperature=0.0, seed=0)
    # Per generated token: every block and the LM head (2 FLOPs per weight), attention left out.
    per_token = 2 * (block_parameters(loaded.model) * loaded.num_layers + loaded.model.lm_head.weight.numel())
    rows: list[dict[str, Any]] = []
    warm = [(Message("user", words(plan.prompt_words, 999)),)]
    generate_y_prime(loaded, warm, settings, backend="transformers", batch_size=1)
    for batch in plan.batch_sizes:
        if time.monotonic() > deadline:
            rows.append({"batch": batch, "skipped": True})
            continue
        prompts = [(Message("user", f"({i}) " + words(plan.prompt_words, i)),) for i in range(2 * batch)]
        synchronize(plan.device)
        start = time.perf_counter()
        generations, _ = generate_y_prime(loaded, prompts, settings, backend="transformers", batch_size=batch)
        synchronize(plan.device)
        seconds = time.perf_counter() - start
        tokens = sum(g.n_tokens for g in generations)
        rows.append(
            {
                "batch": batch,
                "prompts": len(prompts),
                "tokens": tokens,
                "all_hit_budget": all(g.hit_token_limit for g in generations),
                "seconds": seconds,
                "tokens_per_s": tokens / seconds,
                "roofline": tokens * per_token / seconds / rate,
            }
        )
    return rows


def scoring_row(plan: Plan, loaded: Any, rate: float) -> dict[str, Any]:
    """Scoring throughput: (x, y) pairs through the engine's ``project_pairs`` at the last layer."""
    import numpy as np

    from datalint_persona.model.activations import ForwardWork
    from datalint_persona.model.chat import encode_pair
    from datalint_persona.screening.scoring import project_pairs
    from datalint_persona.types import Direction, Message

    rng = np.random.default_rng(0)
    layer = loaded.num_layers - 4
    unit = rng.standard_normal(loaded.hidden_size)
    directions = [Direction("random", layer, unit / np.linalg.norm(unit))]
    pairs = [
        encode_pair(
            loaded.tokenizer,
            (Message("user", f"({i}) " + words(plan.prompt_words, i)),),
            words(plan.response_words // 2 + i % plan.response_words, i + 1),
            max_tokens=4096,
        )
        for i in range(plan.score_pairs)
    ]
    project_pairs(loaded, pairs[:4], directions, batch_size=4)  # warm-up
    work = ForwardWork()
    _, seconds = timed(
        plan.device,
        lambda: project_pairs(loaded, pairs, directions, batch_size=64, token_budget=65536, work=work),
    )
    # Blocks 1..layer run; per token 2 FLOPs per weight, per attention pair 4 * hidden FLOPs.
    flops = 2 * block_parameters(loaded.model) * layer * work.tokens
    flops += 4 * loaded.hidden_size * layer * work.attention_pairs
    return {
        "pairs": len(pairs),
        "tokens": work.tokens,
        "seconds": seconds,
        "tokens_per_s": work.tokens / seconds,
        "roofline": flops / seconds / rate,
    }


def agreement_rows(loaded: Any) -> list[dict[str, Any]]:
    """The hooks, and the shared-prefix KV path, against ``output_hidden_states`` on the device."""
    import torch

    from datalint_persona.model.capture import forward_to_layers, shared_prefix_length

    tokenizer = loaded.tokenizer
    shared = tokenizer(f"<|im_start|>system\n{words(40, 3)}<|im_end|>\n", add_special_tokens=False)[
        "input_ids"
    ]
    tails = [
        tokenizer(f"<|im_start|>user\n{words(n, n)}", add_special_tokens=False)["input_ids"]
        for n in (12, 5, 9)
    ]
    width = len(shared) + max(len(t) for t in tails)
    pad = tokenizer.pad_token_id
    rows = [shared + t + [pad] * (width - len(shared) - len(t)) for t in tails]
    lengths = [len(shared) + len(t) for t in tails]
    device = loaded.device
    ids = torch.tensor(rows, device=device)
    attention = torch.tensor([[1] * n + [0] * (width - n) for n in lengths], device=device)
    prefix = shared_prefix_length(ids, attention)
    layers = list(range(loaded.num_layers + 1))
    with torch.no_grad():
        reference = loaded.model(
            input_ids=ids, attention_mask=attention, output_hidden_states=True
        ).hidden_states
    hooked = forward_to_layers(loaded.model, ids, attention, layers)
    cached = forward_to_layers(loaded.model, ids, attention, layers, prefix=prefix)
    real = attention.bool()

    def worst(captured: dict[int, torch.Tensor]) -> float:
        # Largest difference over every layer's real tokens, relative to that layer's scale.
        return max(
            float(
                (captured[i][real].float() - reference[i][real].float()).abs().max()
                / reference[i][real].float().abs().max()
            )
            for i in layers
        )

    exact = all(torch.equal(hooked[i], reference[i]) for i in layers)
    return [
        {"path": "hooks", "prefix": 0, "worst_relative": worst(hooked), "exact": exact, "ok": exact},
        # bf16 keeps 8 bits of mantissa: a KV-cached continuation may differ in the last bits.
        {"path": "prefix KV", "prefix": prefix, "worst_relative": worst(cached), "exact": None,
         "ok": prefix > 0 and worst(cached) < 0.05},
    ]  # fmt: skip


def peak_memory(device: str) -> str:
    import torch

    if not device.startswith("cuda"):
        return "n/a (CPU)"
    return f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"


def markdown(plan: Plan, facts: dict[str, Any]) -> str:
    """The results as the table GPU-RESULTS.md holds."""
    lines = [
        "# GPU check",
        "",
        f"`python benchmarks/gpu_check.py{' --dry-run' if plan.device == 'cpu' else ''}` on {facts['device']}, "
        f"{facts['date']}, torch {facts['torch']}, transformers {facts['transformers']}.",
        "",
        f"Model: {plan.name} ({facts['parameters'] / 1e9:.2f} B parameters, bf16). "
        f"Measured bf16 matmul rate ({plan.matmul_size}²): **{facts['rate'] / 1e12:.3g} TFLOP/s** "
        "(the roofline's roof). Peak memory: " + facts["peak"] + ".",
        "",
        f"## y' generation (greedy, {plan.max_new_tokens} new tokens, prompts of ~{plan.prompt_words} words)",
        "",
        "| batch | prompts | tokens | every y' ran to the budget | seconds | tokens/s | share of matmul roof |",
        "|---:|---:|---:|---|---:|---:|---:|",
    ]
    for row in facts["generation"]:
        if row.get("skipped"):
            lines.append(f"| {row['batch']} | skipped (time budget) | | | | | |")
        else:
            lines.append(
                f"| {row['batch']} | {row['prompts']} | {row['tokens']} | "
                f"{'yes' if row['all_hit_budget'] else 'no'} | {row['seconds']:.3f} | "
                f"{row['tokens_per_s']:.1f} | {row['roofline']:.1%} |"
            )
    score = facts["scoring"]
    lines += [
        "",
        "## Scoring (project_pairs, batch 64, token budget 65536)",
        "",
        "| pairs | tokens | seconds | tokens/s | share of matmul roof |",
        "|---:|---:|---:|---:|---:|",
        f"| {score['pairs']} | {score['tokens']} | {score['seconds']:.3f} | {score['tokens_per_s']:.0f} | "
        f"{score['roofline']:.1%} |",
        "",
        "## Agreement with output_hidden_states (every layer, real tokens)",
        "",
        "| path | shared prefix | worst relative difference | bit-exact | ok |",
        "|---|---:|---:|---|---|",
    ]
    for row in facts["agreement"]:
        exact = "n/a" if row["exact"] is None else ("yes" if row["exact"] else "no")
        lines.append(
            f"| {row['path']} | {row['prefix']} | {row['worst_relative']:.2e} | {exact} | "
            f"{'yes' if row['ok'] else '**NO**'} |"
        )
    lines += ["", f"Total time: {facts['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def run(plan: Plan) -> tuple[dict[str, Any], str]:
    import datetime

    import torch
    import transformers

    started = time.monotonic()
    if plan.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("No CUDA device: run on a GPU machine, or pass --dry-run for the CPU check.")
    if plan.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        device_name = torch.cuda.get_device_name(0)
    else:
        device_name = f"CPU ({platform.processor() or platform.machine()})"
    rate = matmul_rate(plan)
    loaded = build_model(plan, build_tokenizer())
    agreement = agreement_rows(loaded)
    scoring = scoring_row(plan, loaded, rate)
    generation = generation_rows(plan, loaded, rate, deadline=started + BUDGET_S - 90)
    facts = {
        "device": device_name,
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "rate": rate,
        "peak": peak_memory(plan.device),
        "generation": generation,
        "scoring": scoring,
        "agreement": agreement,
        "seconds": time.monotonic() - started,
    }
    return facts, markdown(plan, facts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="a tiny config on the CPU (no GPU needed)")
    parser.add_argument("--output", type=Path, default=None, help="default: benchmarks/GPU-RESULTS.md")
    args = parser.parse_args(argv)
    plan = DRY_PLAN if args.dry_run else GPU_PLAN
    output = args.output or ROOT / "benchmarks" / (
        "GPU-RESULTS.dry-run.md" if args.dry_run else "GPU-RESULTS.md"
    )
    facts, text = run(plan)
    output.write_text(text, encoding="utf-8")
    print(text)
    failed = [row["path"] for row in facts["agreement"] if not row["ok"]]
    if failed:
        print(f"FAILED: {', '.join(failed)} disagree with output_hidden_states", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
