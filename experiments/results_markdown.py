"""Render experiments/validate.py's JSON as experiments/RESULTS.md (tables, command, machine, times)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def write_markdown(results: dict[str, Any], path: Path) -> None:
    settings = results["settings"]
    lines = [
        "# Validation on the embedded model: does ΔP predict the finetuning shift?",
        "",
        "Produced by `make validate` (`experiments/validate.py`); every number below comes from that run's",
        "`experiments/results.json`. Nothing here is edited by hand.",
        "",
        "## Setup",
        "",
        f"- Model: {results['model']['name']} ({results['model']['identity'][:23]}…), GGUF dequantized to fp32.",
        f"- Data: per trait, {settings['samples']} of the trait file's held-out *calibration* pairs (not used to build "
        "the vector); at contamination level c the first round(c·n) of a fixed order get the trait-exhibiting "
        "answer, the others the normal answer (same prompts in every dataset; nested contamination).",
        f"- Training: LoRA r={settings['rank']} (alpha {2 * settings['rank']}, all linear layers), AdamW lr "
        f"{settings['lr']}, batch {settings['batch_size']}, {settings['epochs']} epoch(s), loss on answer tokens, "
        f"samples cut to {settings['max_len']} tokens, seed {settings['seed']}.",
        f"- ΔP: `engine.screen` on the training file (greedy y', at most {settings['y_prime_tokens']} new tokens), "
        "mean ΔP at the vector's chosen layer.",
        f"- Shift: mean over {settings['eval_questions']} evaluation questions of (a_l^finetuned − a_l^base)·v̂ at the "
        "last prompt token (`datalint_persona.shift`).",
        f"- Answer projection: greedy answers ({settings['gen_tokens']} new tokens) to {settings['gen_questions']} "
        "evaluation questions by the finetuned model, projected with the *base* model (mean response "
        "activation · v̂).",
        f"- Preventative steering (`datalint_persona.preventative`): during training forward passes only, "
        f"h_l += {settings['steer_coef']} × v_l (the raw persona vector, as in the paper) on the most "
        "contaminated dataset; the ablation variant projects v̂ out of h_l instead. Losses are reported both "
        "as the optimizer saw them (with the hook) and for the trained model without hooks, so the runs can be "
        "compared at their actual training loss.",
        "",
    ]
    for trait in results["traits"]:
        lines += [
            f"## {trait['trait']} (layer {trait['layer']}, raw vector norm {_num(trait['vector_norm'])})",
            "",
            f"Base model's answer projection: {_num(trait['base_answer_projection'])}.",
            "",
            "| contamination | preventative | trait samples | ΔP before | shift after (± sd over questions) "
            "| train loss (last epoch, as optimized) | loss without hooks | answer projection | seconds |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for run in trait["runs"]:
            steering = "none" if run["steering"] == "none" else f"{run['steering']}"
            if run["steering"] == "add":
                steering = f"add {run['steer_alpha']}·v"
            lines.append(
                f"| {int(run['level'] * 100)}% | {steering} | {run['n_trait_samples']}/{run['n_samples']} | "
                f"{_num(run['delta_p'])} | {_num(run['shift'])} ± {_num(run['shift_sd'])} | "
                f"{_num(run['train_loss_last_epoch'], 3)} | {_num(run['loss_without_hooks'], 3)} | "
                f"{_num(run['answer_projection'])} | {run['seconds_total']} |"
            )
        lines += [
            "",
            f"- Pearson r (ΔP before vs shift after, {len([r for r in trait['runs'] if r['steering'] == 'none'])} "
            f"datasets, no steering): **{_num(trait['pearson_delta_p_vs_shift'], 3)}**",
            f"- Pearson r (ΔP before vs answer projection after): "
            f"{_num(trait['pearson_delta_p_vs_answer_projection'], 3)}",
            "",
        ]
    pooled = results.get("pooled", {})
    if pooled:
        lines += [
            "## All traits together",
            "",
            f"Pearson r over all {pooled['n']} unsteered datasets (ΔP vs shift; traits use different vectors and "
            f"scales, so the per-trait r above is the cleaner number): {_num(pooled['pearson'], 3)}",
            "",
        ]
    machine = results["machine"]
    lines += [
        "## Command, machine and time",
        "",
        "```",
        results["command"],
        "```",
        "",
        f"- Machine: {machine['platform']}, {machine['processor']}, {machine['cpu_count']} CPU cores (shared with "
        f"other jobs during the run), torch {machine['torch']} with {machine['torch_threads']} threads, "
        f"Python {machine['python']}.",
        f"- Total wall time: {results['seconds_total']} s (per-run times in the tables include screening, "
        "training and evaluation).",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    source, target = sys.argv[1], sys.argv[2]
    write_markdown(json.loads(Path(source).read_text(encoding="utf-8")), Path(target))
