"""Screening benchmark: the engine against reference-style per-sample loops, in one run, same samples.

    python benchmarks/bench_screening.py            # full sizes (about 10 minutes on 2 quiet cores)
    python benchmarks/bench_screening.py --quick    # small sizes, for development

Prints a table and writes benchmarks/RESULTS.md. Every number comes from this run; ΔP of the engine
and of the reference loop must agree within 1e-4 before anything is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_lib as lib  # noqa: E402

FULL = {
    "main": 256,
    "gen_loop": 12,
    "max_new": 32,
    "scale": [256, 1024, 4096],
    "scale_tokens": 48,
    "ablate": 32,
}
QUICK = {"main": 48, "gen_loop": 4, "max_new": 16, "scale": [64, 128, 256], "scale_tokens": 48, "ablate": 16}
TOLERANCE = 1e-4
T0 = time.perf_counter()


def say(text: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {text}", flush=True)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


class StageClock:
    """Progress callback that notes when generation and scoring finish."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        self.marks.setdefault(f"{stage}-start", now)
        if done >= total:
            self.marks[f"{stage}-end"] = now


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for development")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "RESULTS.md"))
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    import torch

    from datalint_persona.model.chat import encode_pair, render_prompt
    from datalint_persona.model.loading import load_model, resolve_model
    from datalint_persona.persona.store import find_vectors
    from datalint_persona.screening.engine import screen
    from datalint_persona.screening.scoring import Direction, project_pairs, project_responses
    from datalint_persona.settings import ScreenOptions

    md: list[str] = []
    info = lib.machine()
    load_before = lib.load_average()
    say(f"machine: {info}")
    spec = resolve_model("smollm2-135m-instruct")
    loaded, load_s = timed(lambda: load_model(spec, device="cpu"))
    say(f"model loaded in {load_s:.1f}s")
    work = Path(tempfile.mkdtemp(prefix="persona-bench-"))
    n = sizes["main"]
    samples = lib.build_samples(n)
    data = work / "bench.jsonl"
    lib.write_jsonl(samples, data)
    cache = work / "cache"
    options = ScreenOptions(
        cache_dir=str(cache), max_new_tokens=sizes["max_new"], fail_on="never", device="cpu"
    )

    # 1. The engine, end to end (generation + scoring), with empty caches.
    say(f"engine: screening {n} samples (y' greedy, max_new_tokens={sizes['max_new']})")
    clock = StageClock()
    result, full_s = timed(lambda: screen([str(data)], options, loaded_model=loaded, progress=clock))
    gen_s = clock.marks["generate-end"] - clock.marks["generate-start"]
    score_s = clock.marks["score-end"] - clock.marks["generate-end"]
    say(f"engine: {full_s:.1f}s (generation {gen_s:.1f}s, scoring {score_s:.1f}s)")
    say("fully cached re-run in a new persona-lint process (as a pre-commit hook on unchanged data)")
    cached_s = cached_rerun_seconds(data, cache, sizes["max_new"], work)
    say(f"fully cached re-run: {cached_s:.2f}s, the model not loaded")
    rules = result.rules
    vectors = {v.trait: v for v in find_vectors(None, spec.name)}
    directions = [Direction(r.trait, r.layer, vectors[r.trait].unit(r.layer)) for r in rules if r.enabled]
    deepest = max(d.layer for d in directions)
    tok = loaded.tokenizer
    y_primes = [s.y_prime for s in result.samples]
    gen_tokens = sum(len(tok(y, add_special_tokens=False)["input_ids"]) for y in y_primes)
    max_tokens = result.settings.max_tokens
    pairs = [
        encode_pair(tok, s.prompt, r or " ", max_tokens=max_tokens)
        for s in samples
        for r in (s.response, y_primes[s.line - 1])
    ]
    score_tokens = sum(len(p.input_ids) for p in pairs)
    # Tokens before the response in the y' pair: what sharing the prompt between y and y' could skip.
    shared_prompt = sum(p.response_mask.index(True) for p in pairs[1::2])

    # 2. The reference scoring loop on the same samples and y'.
    say(f"reference scoring loop: {2 * n} forward passes, full model, output_hidden_states, autograd on")
    raw = {d.trait: (d.layer, vectors[d.trait].vectors[d.layer].astype(np.float64)) for d in directions}

    # One forward per (x, answer) serves every trait, as in the reference scripts (all hidden states).
    def reference_fast_all() -> list[dict[str, float]]:
        out = []
        for i, sample in enumerate(samples):
            prompt_text = render_prompt(tok, sample.prompt)
            row = {}
            for key, answer in (("y", sample.response), ("yp", y_primes[i] or " ")):
                per_layer = lib.reference_projections(loaded, prompt_text, answer, raw)
                row.update({f"{key}:{t}": v for t, v in per_layer.items()})
            out.append(row)
            if (i + 1) % max(1, n // 8) == 0:
                say(f"  reference {i + 1}/{n}")
        return out

    reference, ref_s = timed(reference_fast_all)
    worst = 0.0
    for i, score in enumerate(result.samples):
        for ts in score.scores:
            ref_delta = reference[i][f"y:{ts.trait}"] - reference[i][f"yp:{ts.trait}"]
            worst = max(worst, abs(ref_delta - ts.delta_p))
    assert worst < TOLERANCE, f"ΔP of engine and reference differ by {worst:.2e} (> {TOLERANCE})"
    say(f"reference: {ref_s:.1f}s; max |ΔP engine - ΔP reference| = {worst:.2e} over {n} x {len(directions)}")

    # 3. The reference generation loop on the first prompts, same settings.
    g = sizes["gen_loop"]
    say(f"reference generation loop: {g} prompts, one generate call each")
    texts, loop_s = timed(
        lambda: [
            lib.reference_generate(loaded, render_prompt(tok, s.prompt), sizes["max_new"])
            for s in samples[:g]
        ]
    )
    same_text = sum(a == b for a, b in zip(texts, y_primes[:g], strict=True))
    loop_tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
    say(f"reference generation: {loop_s:.1f}s, {same_text}/{g} texts identical to the engine's")

    # 4. Roofline of the engine's scoring pass: the FLOPs it ran (its own count of real tokens and
    # causal attention pairs: a batch's shared prefix once, y' scored from generation not at all).
    flops_per_token, attention_coef, blocks = lib.matrix_flops(loaded, deepest)
    run_stats = result.cache_stats
    tokens_run, pairs_run = run_stats["tokens_run"], run_stats["attention_pairs_run"]
    # attention_coef * T^2 counts T^2 / 2 pairs, so one (query, key) pair costs 2 * attention_coef.
    flops = flops_per_token * tokens_run + 2 * attention_coef * pairs_run
    # What a pass over every scored pair in full would be, for comparison (tokens up to the last response token).
    needed = [max(i for i, m in enumerate(p.response_mask) if m) + 1 for p in pairs]
    flops_full = sum(flops_per_token * t + attention_coef * t * t for t in needed)
    say("measuring the fp32 matrix-product rate (2048^3, best of 3 s)")
    mm_gflops = lib.matmul_rate()
    engine_gflops = flops / score_s / 1e9
    say(
        f"matmul {mm_gflops:.1f} GFLOP/s; scoring {engine_gflops:.1f} GFLOP/s ({100 * engine_gflops / mm_gflops:.0f}%)"
    )

    # 5. Re-run after changing 1% of the samples.
    changed = max(1, n // 100)
    edited = list(samples)
    for k in range(changed):
        j = (k * 97 + 13) % n
        old = edited[j]
        edited[j] = type(old)(
            old.source,
            old.line,
            old.prompt[:-1] + (type(old.prompt[-1])("user", old.prompt[-1].content + " Please be brief."),),
            old.response + " That is all.",
        )
    data2 = work / "bench-edited.jsonl"
    lib.write_jsonl(edited, data2)
    say(f"re-run with {changed} of {n} samples changed (prompt and response), both caches warm")
    rerun, rerun_s = timed(lambda: screen([str(data2)], options, loaded_model=loaded))
    assert rerun.cache_stats["misses"] == changed, rerun.cache_stats
    (cache / "projections.sqlite3").unlink()
    data3 = work / "bench-edited-2.jsonl"
    edited3 = [
        type(s)(s.source, s.line, s.prompt, s.response + " Done.") if i < changed else s
        for i, s in enumerate(edited)
    ]
    lib.write_jsonl(edited3, data3)
    say("re-run with only the y' cache (projection cache deleted)")
    _, rerun_ycache_s = timed(lambda: screen([str(data3)], options, loaded_model=loaded))
    say(
        f"re-run: {rerun_s:.1f}s = {100 * rerun_s / full_s:.1f}% of the full run; y' cache only: {rerun_ycache_s:.1f}s"
    )

    # 6. Scaling of the scoring pass with dataset size.
    scale_rows = []
    for size in sizes["scale"]:
        batch = lib.build_samples(size, seed=1)
        say(f"scaling: scoring {size} (x, y) pairs cut to {sizes['scale_tokens']} tokens")
        _, seconds = timed(
            lambda b=batch: project_responses(
                loaded,
                [s.prompt for s in b],
                [s.response for s in b],
                directions,
                max_tokens=sizes["scale_tokens"],
            )
        )
        scale_rows.append((size, seconds))
    base_size, base_s = scale_rows[0]

    # 7. Ablations of the scoring pass and of generation batch size.
    m = sizes["ablate"]
    abl_pairs = pairs[: 2 * m]
    abl_tokens = sum(len(p.input_ids) for p in abl_pairs)
    ablations = []
    for label, batch_size, budget, threads, share in (
        ("batch 1", 1, 10**9, None, True),
        ("batch 16, budget 8192 (default)", 16, 8192, None, True),
        ("batch 16, budget 8192, no shared prefix", 16, 8192, None, False),
        ("batch 32, budget 16384", 32, 16384, None, True),
        ("batch 64, budget 32768", 64, 32768, None, True),
        ("batch 16, budget 8192, 1 thread", 16, 8192, 1, True),
    ):
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            _, seconds = timed(
                lambda bs=batch_size, tb=budget, sp=share: project_pairs(
                    loaded, abl_pairs, directions, batch_size=bs, token_budget=tb, share_prefix=sp
                )
            )
        finally:
            torch.set_num_threads(before)
        ablations.append((label, seconds))
        say(f"ablation {label}: {seconds:.2f}s")
    lengths = [len(p.input_ids) for p in pairs]
    from datalint_persona.model.activations import length_sorted_batches

    sorted_pad = lib.padding_ratio(
        lengths, list(length_sorted_batches(lengths, batch_size=16, token_budget=8192))
    )
    plain_pad = lib.padding_ratio(
        lengths, [list(range(i, min(i + 16, len(lengths)))) for i in range(0, len(lengths), 16)]
    )
    gen_ablation = []
    from datalint_persona.model.backends import GenerationSettings
    from datalint_persona.model.backends.transformers_backend import TransformersBackend

    rendered = [render_prompt(tok, s.prompt) for s in samples[: 2 * g]]
    settings = GenerationSettings(max_new_tokens=sizes["max_new"])
    for bs, recorded in ((8, ()), (16, ()), (32, ()), (16, tuple(directions))):
        _, seconds = timed(
            lambda bs=bs, recorded=recorded: [
                x
                for x in TransformersBackend(loaded, record_directions=recorded).generate(
                    rendered, settings, batch_size=bs
                )
            ]
        )
        label = f"{bs}, recording the {len(recorded)} projections" if recorded else str(bs)
        gen_ablation.append((label, seconds))
        say(f"generation batch {label}: {len(rendered)} prompts in {seconds:.1f}s")
    skewed = skewed_generation(loaded, rendered)

    # 8. Peak memory of the loading path and of the scoring stage (other scripts of this folder).
    memory = work_memory()
    scoring_memory = run_script("scoring_memory.py")
    result_memory = run_script("result_memory.py")
    screen_memory = run_script("screen_memory.py")

    # 9. GPU.
    gpu = gpu_section(loaded, samples, directions) if torch.cuda.is_available() else None

    rows = [
        ("scoring, reference loop", n, 2 * n, score_tokens, ref_s),
        ("scoring, engine", n, run_stats["pairs_forwarded"], score_tokens, score_s),
        ("y' generation, reference loop", g, g, loop_tokens, loop_s),
        ("y' generation, engine (batched)", n, n, gen_tokens, gen_s),
    ]
    table = [
        "| what | samples | passes | tokens | seconds | samples/s | tokens/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, count, passes, tokens, seconds in rows:
        table.append(
            f"| {name} | {count} | {passes} | {tokens} | {seconds:.1f} | {count / seconds:.2f} "
            f"| {tokens / seconds:.0f} |"
        )
    speed_score = (n / score_s) / (n / ref_s)
    speed_gen = (n / gen_s) / (g / loop_s)
    # End to end, the reference's generation extrapolated from its g prompts to all n.
    reference_total = loop_s / g * n + ref_s
    print("\n".join(table))
    targets = [
        ("scoring >= 5x the reference loop", f"{speed_score:.1f}x", speed_score >= 5),
        ("generation >= 5x the per-sample loop", f"{speed_gen:.1f}x", speed_gen >= 5),
        (
            "scoring >= 40% of the fp32 matmul rate",
            f"{100 * engine_gflops / mm_gflops:.0f}%",
            engine_gflops / mm_gflops >= 0.4,
        ),
        ("1% re-run <= 5% of a full run", f"{100 * rerun_s / full_s:.1f}%", rerun_s / full_s <= 0.05),
    ]
    for name, value, ok in targets:
        print(f"{name}: {value} -> {'met' if ok else 'NOT met'}")

    md += [
        "# Screening benchmark results",
        "",
        f"Written by `python benchmarks/bench_screening.py{' --quick' if args.quick else ''}` "
        f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Every number below comes from that one run.",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        f"- load average (1 min) at start / end of this run: {load_before} / {lib.load_average()} "
        "(above the core count means other jobs shared the CPUs and the timings are noisy)",
        f"- model: SmolLM2-135M-Instruct (GGUF dequantized to fp32), loaded in {load_s:.1f} s (not counted below)",
        "",
        "## Sizes actually run",
        "",
        f"- {'QUICK' if args.quick else 'FULL'}: {json.dumps(sizes)}",
        f"- {n} samples built from the answers in traits/*.yaml (response words log-normal, median 30, 3..150); "
        f"{len(directions)} traits (bundled vectors, layers {sorted({d.layer for d in directions})}, "
        f"deepest {deepest}); "
        f"y' greedy with max_new_tokens={sizes['max_new']}.",
        "",
        "## Throughput (same samples, same y', same numbers out)",
        "",
        f"ΔP of the engine and of the reference loop agree: max |difference| = {worst:.2e} over {n} samples x "
        f"{len(directions)} traits (asserted < {TOLERANCE}). The reference generation loop produced the same text "
        f"as the engine for {same_text} of {g} prompts.",
        "",
        f"What the engine's scoring stage ran: {run_stats['pairs_forwarded']} of the {2 * n} (x, answer) pairs went "
        f"through the model ({tokens_run} tokens, a batch's shared prefix counted once, against {score_tokens} "
        f"tokens in the pairs); {run_stats['y_prime_from_generation']} of the {n} y' were scored from the activations "
        "recorded while they were generated, because their tokens re-tokenize exactly (the others run "
        "through the model).",
        "",
        *table,
        "",
        "The reference scoring loop runs one sample at a time through the full model with "
        "`output_hidden_states=True` and autograd on, slicing the response after the separately tokenized prompt "
        "(as the persona_vectors scripts do); one forward serves all traits. The engine's scoring time is the "
        "`screen()` stage after generation (tokenization, batching, forward to the deepest layer, projection). "
        "Generation rates are per sample: the reference loop ran on the first prompts only. The engine's "
        "generation time includes recording the y' activations (and the one extra decode step that needs).",
        "",
        f"End to end (generation + scoring, model loaded): engine {full_s:.1f} s; reference about "
        f"{reference_total:.0f} s ({ref_s:.1f} s scoring + generation at the loop's {loop_s / g:.2f} s per "
        f"prompt x {n}, extrapolated from {g} prompts) = **{reference_total / full_s:.1f}x**.",
        "",
        "## Roofline of the scoring pass",
        "",
        f"FLOPs = 2·P·N + 4·d·L·A over what the scoring stage ran: N = {tokens_run} real tokens (padding "
        f"excluded, a batch's shared prefix once), A = {pairs_run} causal (query, key) pairs among them, "
        f"P = {flops_per_token / 2 / 1e6:.2f} M matrix weights in the L = {blocks} blocks that run "
        f"(blocks 0..{blocks - 1}; norms, activations, rotary and embedding lookup omitted), d = "
        f"{loaded.hidden_size}, and 2 FLOPs per multiply-add for each of QKᵀ and AV. "
        f"That is {flops / 1e9:.1f} GFLOP in {score_s:.1f} s = {engine_gflops:.1f} GFLOP/s, against "
        f"{mm_gflops:.1f} GFLOP/s for a 2048³ fp32 matrix product measured in the same run: "
        f"**{100 * engine_gflops / mm_gflops:.0f}%**. Running every one of the {len(pairs)} pairs in full "
        f"(tokens up to the last response token) would be {flops_full / 1e9:.1f} GFLOP; the shared prefixes and the "
        f"y' scored from generation skip {100 * (1 - flops / flops_full):.0f}% of that.",
        "",
        f"## Scaling (scoring pass, (x, y) pairs cut to {sizes['scale_tokens']} tokens, caches off)",
        "",
        "| samples | seconds | samples/s | time / linear prediction from the smallest |",
        "|---:|---:|---:|---:|",
        *[
            f"| {size} | {s:.1f} | {size / s:.1f} | {s / (base_s * size / base_size):.2f} |"
            for size, s in scale_rows
        ],
        "",
        "## Re-run after changing 1% of the samples",
        "",
        f"- full run (empty caches, {n} samples, generation + scoring, model already loaded): {full_s:.1f} s",
        f"- re-run, {changed} samples changed (prompt and response), y' cache + projection cache: {rerun_s:.1f} s = "
        f"**{100 * rerun_s / full_s:.1f}%** of the full run ({rerun.cache_stats['misses']} y' generated)",
        f"- the same with only the y' cache (projection cache deleted): {rerun_ycache_s:.1f} s = "
        f"{100 * rerun_ycache_s / full_s:.1f}%",
        f"- every sample unchanged, in a new `persona-lint` process (imports included; the model is not "
        f"loaded): {cached_s:.2f} s",
        "",
        "## Ablations (measured in this run)",
        "",
        f"Scoring {len(abl_pairs)} pairs ({abl_tokens} tokens) with `project_pairs`:",
        "",
        "| setting | seconds | tokens/s |",
        "|---|---:|---:|",
        *[f"| {label} | {s:.2f} | {abl_tokens / s:.0f} |" for label, s in ablations],
        "",
        f"The prompt tokens under each y' pair are {100 * shared_prompt / score_tokens:.0f}% of the scored tokens "
        f"({shared_prompt} of {score_tokens}): what scoring y' from its generation spares besides the y' tokens.",
        "",
        f"Padding: length-sorted batches process {sorted_pad:.3f}x the real tokens; batches in file order "
        f"{plain_pad:.3f}x.",
        "",
        f"y' generation of {len(rendered)} prompts (max_new_tokens={sizes['max_new']}):",
        "",
        "| batch size | seconds | prompts/s |",
        "|---|---:|---:|",
        *[f"| {label} | {s:.1f} | {len(rendered) / s:.2f} |" for label, s in gen_ablation],
        "",
        skewed,
        "",
        "## Targets",
        "",
        "| target | measured | met? |",
        "|---|---:|---|",
        *[f"| {name} | {value} | {'yes' if ok else 'no'} |" for name, value, ok in targets],
        "",
        "## Peak memory of the loading and validation path",
        "",
        memory,
        "",
        "## Peak memory of the scoring stage",
        "",
        "Growth of peak RSS while `project_responses` scores N pairs, all at once against in chunks of 4096 "
        "(a random 2-layer model with SmolLM2's tokenizer; see the script's docstring):",
        "",
        scoring_memory,
        "",
        "## Peak memory of a whole `screen()` run",
        "",
        "Growth of peak RSS while `screen()` runs on N samples in chunks of 2048 (a random 2-layer model with "
        "SmolLM2's tokenizer; see the script's docstring). The per-sample results go to a spool on disk:",
        "",
        screen_memory,
        "",
        "## Memory of the per-sample records",
        "",
        "What the per-sample records would take in memory (the spool keeps them on disk instead; a merge of "
        "shard reports and the JSON report still build them; see the script's docstring):",
        "",
        result_memory,
        "",
        "## GPU",
        "",
        gpu
        or "**Unmeasured.** This run had no CUDA device, so the GPU section (engine scoring and batched "
        "generation on CUDA, and vLLM when installed) did not run. No GPU numbers exist for this project yet. "
        "`benchmarks/gpu_check.py` (a random model of Qwen2.5-7B's shape in bf16: y' generation per batch size, "
        "scoring, the matmul roofline, peak memory, hooks and prefix KV against `output_hidden_states`) is "
        "prepared for the first GPU and writes `benchmarks/GPU-RESULTS.md`; it is **unmeasured** (only its "
        "`--dry-run` on the CPU has run).",
        "",
    ]
    notes = Path(__file__).resolve().parent / "NOTES.md"
    if notes.exists():
        md += [notes.read_text(encoding="utf-8")]
    Path(args.out).write_text("\n".join(md), encoding="utf-8")
    say(f"wrote {args.out}")


def skewed_generation(loaded: Any, rendered: list[str]) -> str:
    """Issue 16: one long prompt among short ones, --max-new-tokens 1 (prefill only). Times the
    backend's batches, and counts the padded tokens of those batches and of the old rule (batch_size
    x the longest prompt: plain runs of 16 in length order, the long prompt padding its batch)."""
    from datalint_persona.model.backends import GenerationSettings
    from datalint_persona.model.backends.transformers_backend import TransformersBackend, generation_batches

    long_prompt = " ".join(rendered[:12])  # about 12 prompts long
    prompts = [*rendered[:15], long_prompt, *rendered[15:31]]
    settings = GenerationSettings(max_new_tokens=1)
    lengths = [len(loaded.tokenizer(p, add_special_tokens=False)["input_ids"]) + 1 for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    old = [order[i : i + 16] for i in range(0, len(order), 16)]
    new = list(generation_batches([n - 1 for n in lengths], 1, batch_size=16))
    _, seconds = timed(lambda: list(TransformersBackend(loaded).generate(prompts, settings, batch_size=16)))
    say(f"skewed generation: {len(prompts)} prompts in {len(new)} batches, {seconds:.1f}s")
    return (
        f"Skewed lengths (issue 16): {len(prompts)} prompts, one of {max(lengths) - 1} tokens among prompts of "
        f"median {sorted(lengths)[len(lengths) // 2] - 1}, max_new_tokens=1, batch size 16: generated in "
        f"{seconds:.1f} s in {len(new)} batches of sizes {[len(b) for b in new]}; padded tokens "
        f"{lib.padding_ratio(lengths, new):.2f}x the real ones (the old budget, batch_size x the longest "
        f"prompt, kept batches of 16: {lib.padding_ratio(lengths, old):.2f}x)."
    )


def cached_rerun_seconds(data: Path, cache: Path, max_new: int, work: Path) -> float:
    """Wall time of a ``persona-lint`` process that finds every result of ``data`` cached.

    A first process records the model's facts (the engine ran with a model passed in, which records
    none), so it loads the model; the second one is timed, and must not load it.
    """
    command = [
        sys.executable, "-m", "datalint_persona.cli", str(data), "--cache-dir", str(cache),
        "--device", "cpu", "--max-new-tokens", str(max_new), "--fail-on", "never",
        "--format", "json", "-o", str(work / "cached-rerun.json"),
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, check=True)
    done, seconds = timed(lambda: subprocess.run(command, capture_output=True, text=True, check=True))
    assert "model: not loaded" in done.stderr, done.stderr
    return seconds


def work_memory() -> str:
    return run_script("load_memory.py")


def run_script(name: str) -> str:
    """Run another benchmark script of this folder in its own process; its output, fenced."""
    script = Path(__file__).resolve().parent / name
    if not script.exists():
        say(f"benchmarks/{name} is missing; its section is skipped")
        return f"**Missing:** benchmarks/{name} does not exist in this checkout, so this was not measured."
    say(f"running benchmarks/{name}")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=1200, check=False
    )
    output = "\n".join(line for line in (done.stdout + done.stderr).splitlines() if line.startswith("|"))
    print(output)
    return f"`python benchmarks/{name}` (exit {done.returncode}):\n\n```\n{output[-4000:]}\n```"


def gpu_section(loaded_cpu: Any, samples: Any, directions: Any) -> str:
    import torch

    from datalint_persona.model.chat import encode_pair
    from datalint_persona.model.loading import load_model
    from datalint_persona.screening.scoring import project_pairs

    say("GPU: loading the model on cuda")
    loaded = load_model(loaded_cpu.spec, device="cuda")
    pairs = [encode_pair(loaded.tokenizer, s.prompt, s.response, max_tokens=2048) for s in samples]
    tokens = sum(len(p.input_ids) for p in pairs)
    project_pairs(loaded, pairs[:16], directions, batch_size=16)
    torch.cuda.synchronize()
    _, seconds = timed(lambda: project_pairs(loaded, pairs, directions, batch_size=64, token_budget=65536))
    torch.cuda.synchronize()
    name = torch.cuda.get_device_name(0)
    return (
        f"{name}: scoring {len(pairs)} (x, y) pairs, {tokens} tokens, in {seconds:.2f} s "
        f"= {tokens / seconds:.0f} tokens/s."
    )


if __name__ == "__main__":
    main()
