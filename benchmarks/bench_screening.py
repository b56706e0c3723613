"""Screening benchmark: the engine against reference-style per-sample loops, in one run, same samples.

    python benchmarks/bench_screening.py            # full sizes (sized for under 25 minutes on 2 cores)
    python benchmarks/bench_screening.py --quick    # small sizes, for development

Prints tables and writes benchmarks/RESULTS.md. Every number comes from this run; ΔP of the float32
engine and of the reference loop must agree within 1e-4 before anything is printed. The ceiling is
the faster of an fp32 and a bf16 matrix product measured in the same run; end-to-end times include
the model load (the dequantized copy goes to a temporary user cache, never the user's own); a
natural-length data set (``--real-data``) is screened with default settings and projected to 10,000
samples; the targets table comes last.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_lib as lib  # noqa: E402
import bench_runs as runs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

FULL: dict[str, Any] = {
    "main": 128,
    "gen_loop": 8,
    "max_new": 32,
    "scale": [256, 1024],
    "scale_tokens": 48,
    "ablate": 32,
    "real": None,  # every record of the real data set
    "gen_ablate": 64,
    "gen_ablate_new": 96,
    "static_timeout": 180,
    "memory": {"scoring_memory.py": [4000, 16000], "screen_memory.py": [2000, 16000]},
    "demo_args": [],  # the demo with its default settings
}
QUICK: dict[str, Any] = {
    "main": 24,
    "gen_loop": 2,
    "max_new": 8,
    "scale": [32, 64],
    "scale_tokens": 48,
    "ablate": 8,
    "real": 8,
    "gen_ablate": 16,
    "gen_ablate_new": 8,
    "static_timeout": 60,
    "memory": {"scoring_memory.py": [1000], "screen_memory.py": [500]},
    "demo_args": ["--max-new-tokens", "8"],
}
TOLERANCE = 1e-4
REAL_DATA = ROOT.parent / "shared" / "external" / "self_instruct_user_oriented.jsonl"
PROJECTED_SAMPLES = 10_000
say = runs.say


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for development")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "RESULTS.md"))
    parser.add_argument(
        "--real-data",
        default=str(REAL_DATA),
        help="the natural-length data set screened end to end (default ../shared/external/"
        "self_instruct_user_oriented.jsonl beside the repository)",
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    # The dequantized copy of the model goes to a temporary user cache, so the first load below
    # creates it (as on a user's first run) and the user's own cache is left untouched.
    from datalint_persona.user_cache import HOME_VARIABLE, user_cache_dir

    real_user_cache = user_cache_dir()
    user_cache_before = runs.snapshot(real_user_cache)
    work = Path(tempfile.mkdtemp(prefix="persona-bench-"))
    os.environ[HOME_VARIABLE] = str(work / "user-cache")

    import torch

    from datalint_persona.model.chat import encode_pair, render_prompt
    from datalint_persona.model.dtypes import cpu_has_bf16_units
    from datalint_persona.model.loading import load_model, resolve_model
    from datalint_persona.persona.store import find_vectors
    from datalint_persona.screening.engine import screen
    from datalint_persona.screening.scoring import Direction, project_pairs, project_responses
    from datalint_persona.settings import ScreenOptions

    md: list[str] = []
    info = lib.machine()
    bf16_units = cpu_has_bf16_units()
    info["bf16 matrix units (amx_bf16 / avx512_bf16 in the CPU flags)"] = "yes" if bf16_units else "no"
    load_before = lib.load_average()
    say(f"machine: {info}")

    # 1. The ceiling: fp32 and bf16 matrix products, large and decode-shaped.
    say(f"matrix products {lib.MATMUL_SHAPES} in {lib.MATMUL_DTYPES}, best of 3 s each")
    rates = lib.matmul_rates(seconds=3.0)
    for (shape, dtype), rate in rates.items():
        say(f"  {'x'.join(map(str, shape))} {dtype}: {rate:.1f} GFLOP/s")
    big = lib.MATMUL_SHAPES[0]
    peak_dtype, peak = lib.fastest(rates, big)
    decode_dtype, decode_peak = lib.fastest(rates, lib.MATMUL_SHAPES[2])
    say(f"ceiling: {peak:.1f} GFLOP/s ({peak_dtype}, 2048^3)")

    spec = resolve_model("smollm2-135m-instruct")
    n = sizes["main"]
    samples = lib.build_samples(n)
    data = work / "bench.jsonl"
    lib.write_jsonl(samples, data)

    def options(cache: str, **extra: Any) -> ScreenOptions:
        return ScreenOptions(
            cache_dir=str(work / cache),
            max_new_tokens=sizes["max_new"],
            fail_on="never",
            device="cpu",
            **extra,
        )

    # 2. The engine end to end, the model load included, empty caches: the first run creates the
    # dequantized copy, the second finds it; then float32.
    copies = work / "user-cache" / "dequantized"
    say(
        f"engine: screening {n} samples (y' greedy, max_new_tokens={sizes['max_new']}), dtype auto, first load"
    )
    first = runs.engine_run(
        "auto, first load (dequantized copy created)", [str(data)], options("cache-first")
    )
    copy_made = copies.is_dir() and any(copies.iterdir())
    assert copy_made, f"the first load wrote no dequantized copy under {copies}"
    engine = runs.engine_run("auto, dequantized copy warm", [str(data)], options("cache"))
    engine32 = runs.engine_run(
        "float32, dequantized copy warm", [str(data)], options("cache-fp32", dtype="float32")
    )
    result, full_s, gen_s, score_s = engine.result, engine.total_s, engine.generation_s, engine.scoring_s
    run_dtype = result.settings.dtype
    cache = work / "cache"
    options_default = options("cache")
    say("fully cached re-run in a new persona-lint process (as a pre-commit hook on unchanged data)")
    cached_s = cached_rerun_seconds(data, cache, sizes["max_new"], work)
    say(f"fully cached re-run: {cached_s:.2f}s, the model not loaded")

    # 3. The reference: the model loaded from the GGUF file as a naive user would, then per sample.
    say("reference: loading the model from the GGUF file with transformers (gguf_file=)")
    naive, naive_load_s = runs.naive_load(spec)
    say(f"reference load: {naive_load_s:.1f}s")
    rules = result.rules
    vectors = {v.trait: v for v in find_vectors(None, spec.name)}
    directions = [Direction(r.trait, r.layer, vectors[r.trait].unit(r.layer)) for r in rules if r.enabled]
    deepest = max(d.layer for d in directions)
    tok = naive.tokenizer
    y_primes = [s.y_prime for s in engine32.result.samples]  # float32, as the reference runs
    y_primes_default = [s.y_prime for s in result.samples]
    max_tokens = result.settings.max_tokens
    pairs = [
        encode_pair(tok, s.prompt, r or " ", max_tokens=max_tokens)
        for s in samples
        for r in (s.response, y_primes_default[s.line - 1])
    ]
    score_tokens = sum(len(p.input_ids) for p in pairs)
    # Tokens before the response in the y' pair: what sharing the prompt between y and y' could skip.
    shared_prompt = sum(p.response_mask.index(True) for p in pairs[1::2])

    say(f"reference scoring loop: {2 * n} forward passes, full model, output_hidden_states, autograd on")
    raw = {d.trait: (d.layer, vectors[d.trait].vectors[d.layer].astype(np.float64)) for d in directions}

    # One forward per (x, answer) serves every trait, as in the reference scripts (all hidden states).
    def reference_fast_all() -> list[dict[str, float]]:
        out = []
        for i, sample in enumerate(samples):
            prompt_text = render_prompt(tok, sample.prompt)
            row = {}
            for key, answer in (("y", sample.response), ("yp", y_primes[i] or " ")):
                per_layer = lib.reference_projections(naive, prompt_text, answer, raw)
                row.update({f"{key}:{t}": v for t, v in per_layer.items()})
            out.append(row)
            if (i + 1) % max(1, n // 8) == 0:
                say(f"  reference {i + 1}/{n}")
        return out

    reference, ref_s = timed(reference_fast_all)
    # ΔP = proj(x, y) - (w proj(x, y') + (1 - w) m), with each rule's own-answer weight w and mean m.
    rule_by_trait = {r.trait: r for r in engine32.result.rules}
    worst = worst_projection = 0.0
    for i, score in enumerate(engine32.result.samples):
        for ts in score.scores:
            rule = rule_by_trait[ts.trait]
            ref_y, ref_yp = reference[i][f"y:{ts.trait}"], reference[i][f"yp:{ts.trait}"]
            weight, mean = rule.reference_weight, rule.reference_mean
            ref_delta = ref_y - (weight * ref_yp + (1.0 - weight) * mean)
            worst = max(worst, abs(ref_delta - ts.delta_p))
            worst_projection = max(
                worst_projection, abs(ref_y - ts.projection_y), abs(ref_yp - ts.projection_y_prime)
            )
    assert worst < TOLERANCE and worst_projection < TOLERANCE, (
        f"engine (float32) and reference differ: ΔP by {worst:.2e}, projections by {worst_projection:.2e} "
        f"(> {TOLERANCE})"
    )
    say(
        f"reference: {ref_s:.1f}s; max |ΔP engine float32 - ΔP reference| = {worst:.2e} over {n} x {len(directions)}"
    )
    dtype_check = compare_dtypes(result.samples, engine32.result.samples)
    say(dtype_check)

    # The reference generation loop on prompts spread over the set, same settings.
    g = sizes["gen_loop"]
    picked = lib.evenly_spaced(n, g)
    say(f"reference generation loop: {g} prompts, one generate call each")
    texts, loop_s = timed(
        lambda: [
            lib.reference_generate(naive, render_prompt(tok, samples[i].prompt), sizes["max_new"])
            for i in picked
        ]
    )
    same_text = sum(t == y_primes[i] for t, i in zip(texts, picked, strict=True))
    same_text_default = sum(t == y_primes_default[i] for t, i in zip(texts, picked, strict=True))
    loop_tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
    say(f"reference generation: {loop_s:.1f}s, {same_text}/{g} texts identical to the float32 engine's")
    reference_gen_total = loop_s / g * n
    reference_total = naive_load_s + reference_gen_total + ref_s
    ratios = {run.label: reference_total / run.total_s for run in (first, engine, engine32)}
    say(
        f"end to end with the load: reference {reference_total:.0f}s; "
        + ", ".join(f"{label} {r:.1f}x" for label, r in ratios.items())
    )

    # 4. Roofline of the engine's scoring pass: the FLOPs it ran (its own count of real tokens and
    # causal attention pairs: a batch's shared prefix once, y' scored from generation not at all).
    flops_per_token, attention_coef, blocks = lib.matrix_flops(naive, deepest)
    run_stats = result.cache_stats
    tokens_run, pairs_run = run_stats["tokens_run"], run_stats["attention_pairs_run"]
    # attention_coef * T^2 counts T^2 / 2 pairs, so one (query, key) pair costs 2 * attention_coef.
    flops = flops_per_token * tokens_run + 2 * attention_coef * pairs_run
    # What a pass over every scored pair in full would be, for comparison (tokens up to the last response token).
    needed = [max(i for i, m in enumerate(p.response_mask) if m) + 1 for p in pairs]
    flops_full = sum(flops_per_token * t + attention_coef * t * t for t in needed)
    engine_gflops = flops / score_s / 1e9
    scoring_pct = lib.roofline_percent(flops, score_s, peak)
    say(
        f"scoring ({run_dtype}) {engine_gflops:.1f} GFLOP/s = {scoring_pct:.0f}% of {peak:.0f} ({peak_dtype})"
    )

    # 5. Roofline of the engine's generation stage: 2 P per generated token plus attention.
    gen_params = lib.generation_matrix_params(naive)
    d_model, n_layers = naive.hidden_size, naive.num_layers
    bench_gen = generation_roofline(
        tok, result.samples, gen_s, gen_params, d_model, n_layers, peak, decode_peak
    )
    say(f"generation roofline, bench set: {bench_gen['line']}")

    # 6. Re-run after changing 1% of the samples (the default dtype's model passed in).
    loaded, auto_load_s = timed(lambda: load_model(spec, device="cpu", dtype="auto"))
    say(
        f"model loaded ({str(loaded.model.dtype).removeprefix('torch.')}) from the warm copy in {auto_load_s:.1f}s"
    )
    loaded_run_s = full_s - engine.load_s
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
    rerun, rerun_s = timed(lambda: screen([str(data2)], options_default, loaded_model=loaded))
    assert rerun.cache_stats["misses"] == changed, rerun.cache_stats
    (cache / "projections.sqlite3").unlink()
    data3 = work / "bench-edited-2.jsonl"
    edited3 = [
        type(s)(s.source, s.line, s.prompt, s.response + " Done.") if i < changed else s
        for i, s in enumerate(edited)
    ]
    lib.write_jsonl(edited3, data3)
    say("re-run with only the y' cache (projection cache deleted)")
    _, rerun_ycache_s = timed(lambda: screen([str(data3)], options_default, loaded_model=loaded))
    say(
        f"re-run: {rerun_s:.1f}s = {100 * rerun_s / loaded_run_s:.1f}% of the full run without its load; "
        f"y' cache only: {rerun_ycache_s:.1f}s"
    )

    # 7. Scaling of the scoring pass with dataset size.
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

    # 8. Ablations of the scoring pass.
    m = sizes["ablate"]
    abl_pairs = pairs[: 2 * m]
    abl_tokens = sum(len(p.input_ids) for p in abl_pairs)
    ablations = []
    for label, batch_size, budget, threads, share in (
        ("batch 1", 1, 10**9, None, True),
        ("batch 16, budget 8192", 16, 8192, None, True),
        ("batch 32, budget 16384 (default)", 32, 16384, None, True),
        ("batch 32, budget 16384, no shared prefix", 32, 16384, None, False),
        ("batch 64, budget 32768", 64, 32768, None, True),
        ("batch 32, budget 16384, 1 thread", 32, 16384, 1, True),
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
    rendered_bench = [render_prompt(tok, s.prompt) for s in samples[: 2 * g]]
    skewed = skewed_generation(loaded, rendered_bench)

    # 9. The realistic workload: a natural-length data set, end to end with default settings.
    real_path = Path(args.real_data)
    real = real_workload(real_path, sizes, work, tok, gen_params, d_model, n_layers, peak, decode_peak)

    # 10. Generation ablation on the same real prompts: batch size, recording, static KV cache.
    gen_ablation = (
        generation_ablation(real_path, sizes, work, loaded, tok, directions) if real_path.is_file() else None
    )

    # 11. The demo re-run, everything cached, through the CLI.
    say("demo: persona-lint examples/demo/train.jsonl examples/demo/evil.jsonl, twice, one cache folder")
    demo_first_s, demo_s, demo_model_line = runs.demo_rerun_seconds(work, sizes["demo_args"])
    demo_command = " ".join(
        ["persona-lint", "examples/demo/train.jsonl", "examples/demo/evil.jsonl", *sizes["demo_args"]]
    )
    say(f"demo: first {demo_first_s:.1f}s, fully cached re-run {demo_s:.2f}s ({demo_model_line})")

    # 12. Peak memory of the loading path and of the scoring stage (other scripts of this folder).
    memory = work_memory()
    scoring_memory = run_script("scoring_memory.py", sizes["memory"]["scoring_memory.py"])
    result_memory = run_script("result_memory.py")
    screen_memory = run_script("screen_memory.py", sizes["memory"]["screen_memory.py"])

    # 13. GPU.
    gpu = gpu_section(loaded, samples, directions) if torch.cuda.is_available() else None

    user_cache_untouched = runs.snapshot(real_user_cache) == user_cache_before
    assert user_cache_untouched, f"the benchmark changed the user cache {real_user_cache}"

    bench_gen_tokens = sum(bench_gen["new_tokens"])
    gen32_tokens = sum(runs.useful_new_tokens(tok, engine32.result.samples))
    rows = [
        ("scoring, reference loop (float32)", n, 2 * n, score_tokens, ref_s),
        (f"scoring, engine ({run_dtype})", n, run_stats["pairs_forwarded"], score_tokens, score_s),
        (
            "scoring, engine (float32)",
            n,
            engine32.result.cache_stats["pairs_forwarded"],
            score_tokens,
            engine32.scoring_s,
        ),
        ("y' generation, reference loop (float32)", g, g, loop_tokens, loop_s),
        (f"y' generation, engine ({run_dtype}, batched)", n, n, bench_gen_tokens, gen_s),
        ("y' generation, engine (float32, batched)", n, n, gen32_tokens, engine32.generation_s),
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
    print("\n".join(table))
    end_to_end = [
        "| run | load s | generation s | scoring s | total s | reference / this |",
        "|---|---:|---:|---:|---:|---:|",
        f"| reference: GGUF load with `gguf_file=`, per-sample loops (float32; generation extrapolated "
        f"from {g} prompts to {n}) | {naive_load_s:.1f} | {reference_gen_total:.1f} | {ref_s:.1f} | "
        f"{reference_total:.1f} | 1.0x |",
        *[
            f"| engine `screen()`, dtype {run.label} | {run.load_s:.1f} | {run.generation_s:.1f} | "
            f"{run.scoring_s:.1f} | {run.total_s:.1f} | **{ratios[run.label]:.1f}x** |"
            for run in (first, engine, engine32)
        ],
    ]
    print("\n".join(end_to_end))
    ratio = ratios[engine.label]
    ratio_goal = 25 if bf16_units else 8
    targets = [
        (
            f"end to end (model load included) >= {ratio_goal}x the reference "
            f"({'a CPU with bf16 units: 25x' if bf16_units else 'no bf16 units: 8x'})",
            f"{ratio:.1f}x with the dequantized copy warm ({ratios[first.label]:.1f}x on the first run, which "
            f"creates it; float32 {ratios[engine32.label]:.1f}x)",
            ratio >= ratio_goal,
        ),
        (
            "generation >= 30% of the compute-bound rate",
            (f"{real['gen']['pct']:.2f}% on the natural-length set" if real else "real set missing")
            + f"; {bench_gen['pct']:.2f}% on the benchmark set (of {peak:.0f} GFLOP/s, {peak_dtype} 2048³)",
            real is not None and real["gen"]["pct"] >= 30,
        ),
        (
            f"{PROJECTED_SAMPLES:,} natural-length samples < 30 min (projected, linear)",
            f"{real['projection_s'] / 60:.1f} min projected from {real['n']} samples at {real['rate']:.2f} samples/s"
            if real
            else "real set missing",
            real is not None and real["projection_s"] < 30 * 60,
        ),
        ("fully cached demo re-run < 3 s", f"{demo_s:.2f} s", demo_s < 3),
        ("scoring >= 5x the reference loop", f"{speed_score:.1f}x", speed_score >= 5),
        ("generation >= 5x the per-sample loop", f"{speed_gen:.1f}x", speed_gen >= 5),
        (
            f"scoring >= 40% of the faster matmul rate ({peak_dtype} 2048³)",
            f"{scoring_pct:.0f}%",
            scoring_pct >= 40,
        ),
        (
            "1% re-run <= 5% of a full run (both with the model already loaded)",
            f"{100 * rerun_s / loaded_run_s:.1f}%",
            rerun_s / loaded_run_s <= 0.05,
        ),
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
        f"- model: SmolLM2-135M-Instruct (GGUF Q4_1); the engine runs dtype `auto` = **{run_dtype}** here",
        f"- the dequantized copy went to a temporary user cache (`{HOME_VARIABLE}` set to a temp folder); "
        f"the user's cache ({real_user_cache}) was checked unchanged after the run: "
        f"{'yes' if user_cache_untouched else 'NO'}",
        "",
        "## Sizes actually run",
        "",
        f"- {'QUICK' if args.quick else 'FULL'}: {json.dumps(sizes)}",
        f"- {n} samples built from the answers in traits/*.yaml (response words log-normal, median 30, 3..150); "
        f"{len(directions)} traits (bundled vectors, layers {sorted({d.layer for d in directions})}, "
        f"deepest {deepest}); "
        f"y' greedy with max_new_tokens={sizes['max_new']}.",
        "",
        "## The ceiling: matrix products (measured in this run)",
        "",
        "| m x k x n | " + " | ".join(f"{d} GFLOP/s" for d in lib.MATMUL_DTYPES) + " | bf16 / fp32 |",
        "|---|" + "---:|" * (len(lib.MATMUL_DTYPES) + 1),
        *[
            f"| {'x'.join(map(str, shape))} | "
            + " | ".join(f"{rates[(shape, d)]:.1f}" for d in lib.MATMUL_DTYPES)
            + f" | {rates[(shape, 'bfloat16')] / rates[(shape, 'float32')]:.2f}x |"
            for shape in lib.MATMUL_SHAPES
        ],
        "",
        f"Best of 3 s each, `torch.mm`, a small product repeated to about 2 GFLOP per timing. Every "
        f"roofline below is stated against the **faster** dtype's 2048³ rate: **{peak:.1f} GFLOP/s "
        f"({peak_dtype})**. The decode-shaped rows are what one decode step's MLP products (d_model 576, "
        f"d_ff 1536) can reach at 64 and 16 rows; the faster at 16 rows is {decode_peak:.1f} GFLOP/s "
        f"({decode_dtype}).",
        "",
        "## End to end, the model load included",
        "",
        *end_to_end,
        "",
        f"Same {n} samples, same settings, empty y' and projection caches in every run. The reference loads the "
        "model the way a user of the reference scripts would (`AutoModelForCausalLM.from_pretrained(dir, "
        "gguf_file=..., dtype=torch.float32)`, dequantizing the GGUF file on every load), then runs one greedy "
        "`generate` per prompt and one forward with `output_hidden_states=True` for each of (x, y) and (x, y′). "
        f"Its generation time is {loop_s / g:.2f} s per prompt measured on {g} prompts spread evenly over the set "
        f"(indices {picked}), times {n}; its scoring loop ran on all {n}. The engine runs are `screen()` with no "
        "model passed in, so each loads the model itself as the CLI does: the first from the GGUF file, "
        "writing the dequantized safetensors copy (to a temporary user cache), the others from that copy.",
        "",
        "## Throughput (same samples, same numbers out)",
        "",
        f"The float32 engine and the reference loop agree: max |difference| of the projections = "
        f"{worst_projection:.2e}, of ΔP = {worst:.2e} (each rule's ΔP = proj(x, y) − (w·proj(x, y′) + (1 − w)·m) "
        f"with its own-answer weight w and mean m, computed here from the reference's projections) over {n} "
        f"samples x {len(directions)} traits (asserted < {TOLERANCE}). {dtype_check} The reference generation loop "
        f"produced the same text as the float32 engine for {same_text} of {g} prompts (as the {run_dtype} "
        f"engine for {same_text_default} of {g}).",
        "",
        f"What the engine's scoring stage ran ({run_dtype}): {run_stats['pairs_forwarded']} of the {2 * n} "
        f"(x, answer) pairs went through the model ({tokens_run} tokens, a batch's shared prefix counted once, "
        f"against {score_tokens} tokens in the pairs); {run_stats['y_prime_from_generation']} of the {n} y' were "
        "scored from the activations recorded while they were generated, because their tokens re-tokenize "
        "exactly (the others run through the model).",
        "",
        *table,
        "",
        "The reference scoring loop runs one sample at a time through the full model with "
        "`output_hidden_states=True` and autograd on, slicing the response after the separately tokenized prompt "
        "(as the persona_vectors scripts do); one forward serves all traits. The engine's scoring time is the "
        "`screen()` stage after generation (tokenization, batching, forward to the deepest layer, projection). "
        "Generation rates are per sample: the reference loop ran on some prompts only. The engine's "
        "generation time includes recording the y' activations (and the one extra decode step that needs). "
        "Generated tokens are the y' re-tokenized, plus the end-of-sequence token where a y' stopped early.",
        "",
        "## Roofline of the scoring pass",
        "",
        f"FLOPs = 2·P·N + 4·d·L·A over what the scoring stage ran: N = {tokens_run} real tokens (padding "
        f"excluded, a batch's shared prefix once), A = {pairs_run} causal (query, key) pairs among them, "
        f"P = {flops_per_token / 2 / 1e6:.2f} M matrix weights in the L = {blocks} blocks that run "
        f"(blocks 0..{blocks - 1}; norms, activations, rotary and embedding lookup omitted), d = "
        f"{d_model}, and 2 FLOPs per multiply-add for each of QKᵀ and AV. "
        f"That is {flops / 1e9:.1f} GFLOP in {score_s:.1f} s ({run_dtype}) = {engine_gflops:.1f} GFLOP/s, against "
        f"{peak:.1f} GFLOP/s for a 2048³ {peak_dtype} matrix product measured in the same run: "
        f"**{scoring_pct:.0f}%**. Running every one of the {len(pairs)} pairs in full "
        f"(tokens up to the last response token) would be {flops_full / 1e9:.1f} GFLOP; the shared prefixes and the "
        f"y' scored from generation skip {100 * (1 - flops / flops_full):.0f}% of that.",
        "",
        "## Roofline of the generation stage",
        "",
        f"Useful FLOPs = 2·P·G + 4·d·L·A: G generated tokens (each y' plus its end-of-sequence token where it "
        f"stopped early; padding rows and steps after a row's end not counted), P = {gen_params / 1e6:.2f} M "
        f"weights of the matrices each token passes through (the {n_layers} blocks' linear layers and the LM "
        f"head), and A = the causal (query, key) pairs of those decode steps (answer token j after a prompt of "
        "p tokens attends to p + j keys). The prompts' prefill is not counted, so this is the generated "
        f"tokens' share of the work. Against {peak:.1f} GFLOP/s ({peak_dtype} 2048³), and, for comparison, "
        f"against the decode-shaped 16x576·576x1536 rate ({decode_peak:.1f} GFLOP/s, {decode_dtype}):",
        "",
        "| run | G tokens | GFLOP | generation s | tokens/s | GFLOP/s | % of 2048³ | % of 16-row |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        bench_gen["row"].format(name=f"benchmark set, {n} samples, max_new_tokens={sizes['max_new']}"),
        *(
            [
                real["gen"]["row"].format(
                    name=f"natural-length set, {real['n']} samples, max_new_tokens={real['max_new']}"
                )
            ]
            if real
            else []
        ),
        "",
        "## A realistic workload: natural lengths, default settings",
        "",
        real["md"] if real else f"**Not run:** {real_path} does not exist.",
        "",
        f"## Scaling (scoring pass, {run_dtype}, (x, y) pairs cut to {sizes['scale_tokens']} tokens, caches off)",
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
        f"- full run (empty caches, {n} samples, generation + scoring, {run_dtype}): {full_s:.1f} s, "
        f"{loaded_run_s:.1f} s without its model load",
        f"- re-run with the model passed in, {changed} samples changed (prompt and response), y' cache + "
        f"projection cache: {rerun_s:.1f} s = **{100 * rerun_s / loaded_run_s:.1f}%** of the full run without "
        f"its load ({rerun.cache_stats['misses']} y' generated)",
        f"- the same with only the y' cache (projection cache deleted): {rerun_ycache_s:.1f} s = "
        f"{100 * rerun_ycache_s / loaded_run_s:.1f}%",
        f"- every sample unchanged, in a new `persona-lint` process (imports included; the model is not "
        f"loaded): {cached_s:.2f} s",
        f"- the demo (`{demo_command}`, {'default settings, ' if not sizes['demo_args'] else ''}one cache "
        f"folder): first run {demo_first_s:.1f} s, fully cached re-run **{demo_s:.2f} s** (`{demo_model_line}`)",
        "",
        f"## Ablations of the scoring pass ({run_dtype}, measured in this run)",
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
        skewed,
        "",
        f"## Generation ablation ({run_dtype}, the natural-length prompts)",
        "",
        gen_ablation or f"**Not run:** {real_path} does not exist.",
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
        md += [notes.read_text(encoding="utf-8"), ""]
    md += [
        "## Targets",
        "",
        "| target | measured | met? |",
        "|---|---|---|",
        *[f"| {name} | {value} | {'yes' if ok else 'no'} |" for name, value, ok in targets],
        "",
    ]
    Path(args.out).write_text("\n".join(md), encoding="utf-8")
    say(f"wrote {args.out}")


def compare_dtypes(default_scores: Any, float32_scores: Any) -> str:
    """How the default dtype's y' and ΔP compare with float32's, on the same samples."""
    same = [a for a, b in zip(default_scores, float32_scores, strict=True) if a.y_prime == b.y_prime]
    by_sample = {s.index: s for s in float32_scores}
    gaps = [abs(ts.delta_p - by_sample[s.index].for_trait(ts.trait).delta_p) for s in same for ts in s.scores]
    spread = float(np.std([ts.delta_p for s in float32_scores for ts in s.scores]))
    dtype_gap = f"max |ΔP − ΔP float32| = {max(gaps):.3f}" if gaps else "no y' in common"
    return (
        f"The default dtype's y' equals float32's for {len(same)} of {len(float32_scores)} samples; on those, "
        f"{dtype_gap} (the sd of ΔP is {spread:.2f})."
    )


def generation_roofline(
    tokenizer: Any,
    scores: Any,
    seconds: float,
    params: int,
    d_model: int,
    layers: int,
    peak: float,
    decode_peak: float,
) -> dict[str, Any]:
    """The generation stage's useful FLOPs, rate and share of the ceiling, for a run's samples."""
    scores = list(scores)
    new_tokens = runs.useful_new_tokens(tokenizer, scores)
    prompt_tokens = runs.prompt_lengths(tokenizer, [s.sample.prompt for s in scores])
    flops = lib.generation_flops(params, prompt_tokens, new_tokens, d_model=d_model, layers=layers)
    pct = lib.roofline_percent(flops, seconds, peak)
    decode_pct = lib.roofline_percent(flops, seconds, decode_peak)
    tokens = sum(new_tokens)
    row = (
        f"| {{name}} | {tokens} | {flops / 1e9:.1f} | {seconds:.1f} | {tokens / seconds:.0f} | "
        f"{flops / seconds / 1e9:.1f} | **{pct:.2f}%** | {decode_pct:.0f}% |"
    )
    line = f"{tokens} tokens in {seconds:.1f}s = {tokens / seconds:.0f} tok/s, {pct:.1f}% of the ceiling"
    return {"pct": pct, "row": row, "line": line, "new_tokens": new_tokens, "prompt_tokens": prompt_tokens}


def real_workload(
    path: Path,
    sizes: dict[str, Any],
    work: Path,
    tokenizer: Any,
    params: int,
    d_model: int,
    layers: int,
    peak: float,
    decode_peak: float,
) -> dict[str, Any] | None:
    """The natural-length data set screened end to end with default settings (the model loaded by
    the run, from the warm dequantized copy); None when the file is missing."""
    from datalint_persona.settings import ScreenOptions

    if not path.is_file():
        say(f"real workload: {path} is missing; skipped")
        return None
    say(f"real workload: screening {path.name} (max_samples={sizes['real']}), default settings")
    options = ScreenOptions(cache_dir=str(work / "cache-real"), fail_on="never", max_samples=sizes["real"])
    run = runs.engine_run("auto, natural lengths", [str(path)], options)
    scores = list(run.result.samples)
    count = len(scores)
    rate = count / run.total_s
    projection = lib.projected_seconds(PROJECTED_SAMPLES, count, run.total_s)
    gen = generation_roofline(tokenizer, scores, run.generation_s, params, d_model, layers, peak, decode_peak)
    responses = [len(tokenizer(s.sample.response, add_special_tokens=False)["input_ids"]) for s in scores]
    prompts = gen["prompt_tokens"]
    at_limit = sum(s.y_prime_hit_token_limit for s in scores)
    max_new = run.result.settings.max_new_tokens
    say(
        f"real workload: {rate:.2f} samples/s; {PROJECTED_SAMPLES} samples projected {projection / 60:.1f} min"
    )
    md = (
        f"`{path.name}` ({count} records, Alpaca-style, as they are), `screen()` with default settings "
        f"(dtype {run.result.settings.dtype}, batch size {run.result.settings.batch_size}, the calibrated "
        f"max_new_tokens={max_new}), empty caches, the model loaded by the run from the warm dequantized copy. "
        f"Prompts {min(prompts)}..{max(prompts)} tokens in the chat template (median "
        f"{int(np.median(prompts))}), responses {min(responses)}..{max(responses)} tokens (median "
        f"{int(np.median(responses))}); {at_limit} of {count} y' reached max_new_tokens.\n\n"
        f"| load s | generation s | scoring s | total s | samples/s |\n|---:|---:|---:|---:|---:|\n"
        f"| {run.load_s:.1f} | {run.generation_s:.1f} | {run.scoring_s:.1f} | {run.total_s:.1f} | "
        f"**{rate:.2f}** |\n\n"
        f"**Projected** for {PROJECTED_SAMPLES:,} such samples, linear from this rate (the load counted once per "
        f"{count} samples, so slightly pessimistic): {projection:.0f} s = **{projection / 60:.1f} min**. Not "
        "measured at that size."
    )
    return {"n": count, "rate": rate, "projection_s": projection, "gen": gen, "md": md, "max_new": max_new}


def generation_ablation(
    path: Path, sizes: dict[str, Any], work: Path, loaded: Any, tokenizer: Any, directions: Any
) -> str:
    """Generation throughput of the engine's backend on the real prompts: batch sizes 16, 32 and
    64 (recording the projections, as the engine does), 16 without recording, and a static KV cache
    (transformers' ``cache_implementation="static"``) in a process of its own under a timeout."""
    from datalint_persona.dataset.loaders import iter_dataset
    from datalint_persona.model.chat import render_prompt
    from datalint_persona.types import Sample

    count, max_new = sizes["gen_ablate"], sizes["gen_ablate_new"]
    records = [s for s in iter_dataset([str(path)], max_samples=count) if isinstance(s, Sample)]
    rendered = [render_prompt(tokenizer, s.prompt) for s in records]
    rows: list[tuple[str, dict[str, Any]]] = []
    # Untimed warm-up, so that the first row does not pay for first-use costs (kernel selection,
    # allocator growth) that the later rows would not.
    runs.generation_row(loaded, rendered[:16], min(8, max_new), 16, directions)
    for batch_size, recorded in ((16, directions), (32, directions), (64, directions), (16, ())):
        label = f"{batch_size}" + (
            ", recording the projections (the engine's path)" if recorded else ", no recording"
        )
        say(f"generation ablation: batch {label}, {len(rendered)} prompts, max_new_tokens={max_new}")
        row = runs.generation_row(loaded, rendered, max_new, batch_size, recorded)
        rows.append((label, row))
        say(f"  {row['tokens']} tokens in {row['seconds']:.1f}s = {row['tokens'] / row['seconds']:.0f} tok/s")
    say(f"generation ablation: static KV cache, batch 16, own process, timeout {sizes['static_timeout']} s")
    static = runs.generation_probe(
        rendered, work, max_new, 16, sizes["static_timeout"], cache_implementation="static"
    )
    if "error" in static:
        say(f"  static: {static['error']}")
    else:
        say(f"  static: {static['tokens']} tokens in {static['seconds']:.1f}s")
    reference_texts = rows[0][1]["texts"]
    lines = [
        f"{len(rendered)} prompts of `{path.name}`, greedy, max_new_tokens={max_new}, the engine's "
        "`TransformersBackend` with the model passed in (so no load is timed); tokens/s counts each y' and its "
        "end-of-sequence token.",
        "",
        "| variant (batch size) | tokens | seconds | tokens/s | y' identical to batch 16's |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, row in rows:
        same = lib.common_count(row["texts"], reference_texts)
        lines.append(
            f"| {label} | {row['tokens']} | {row['seconds']:.1f} | {row['tokens'] / row['seconds']:.0f} | "
            f"{same} of {len(rendered)} |"
        )
    if "error" in static:
        lines.append(f"| 16, static KV cache (own process) | | | {static['error']} | |")
    else:
        same = lib.common_count(static["texts"], reference_texts)
        lines.append(
            f"| 16, static KV cache (own process, no recording) | {static['tokens']} | {static['seconds']:.1f} | "
            f"{static['tokens'] / static['seconds']:.0f} | {same} of {len(rendered)} |"
        )
    engine_rows = rows[:3]
    best_label, best = max(engine_rows, key=lambda item: item[1]["tokens"] / item[1]["seconds"])
    lines += [
        "",
        f"Fastest batch size on the engine's path in this run: **{best_label.split(',')[0]}** "
        f"({best['tokens'] / best['seconds']:.0f} tokens/s; the product default is 16 and is not changed by "
        "this benchmark). The identical-y' column counts the y' texts (as digests) the two runs have in "
        "common (bf16 results can depend on the batch's shape). `torch.compile` is not used: measured "
        "before, its first call took 194 s, more than a whole run of this size.",
    ]
    return "\n".join(lines)


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


def run_script(name: str, arguments: Sequence[int] = ()) -> str:
    """Run another benchmark script of this folder in its own process; its output, fenced."""
    script = Path(__file__).resolve().parent / name
    if not script.exists():
        say(f"benchmarks/{name} is missing; its section is skipped")
        return f"**Missing:** benchmarks/{name} does not exist in this checkout, so this was not measured."
    shown = " ".join(["python", f"benchmarks/{name}", *map(str, arguments)])
    say(f"running {shown}")
    done = subprocess.run(
        [sys.executable, str(script), *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env=runs.source_tree_env(),
    )
    output = "\n".join(line for line in (done.stdout + done.stderr).splitlines() if line.startswith("|"))
    print(output)
    return f"`{shown}` (exit {done.returncode}):\n\n```\n{output[-4000:]}\n```"


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
