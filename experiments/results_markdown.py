"""Render experiments/validate.py's JSON as experiments/RESULTS.md (tables, command, machine, times)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _summary(runs: list[dict[str, Any]]) -> list[str]:
    """Computed comparisons: lowest vs highest contamination, and steered vs unsteered at the top level."""
    plain = {r["level"]: r for r in runs if r["steering"] == "none"}
    if len(plain) < 2:
        return []
    low, high = plain[min(plain)], plain[max(plain)]
    lines = [
        f"- {int(high['level'] * 100)}% vs {int(low['level'] * 100)}% contamination: ΔP {_num(high['delta_p'])} vs "
        f"{_num(low['delta_p'])}, shift {_num(high['shift'])} vs {_num(low['shift'])}.",
    ]
    for run in runs:
        if run["steering"] != "none" and run["level"] == high["level"]:
            lines.append(
                f"- Preventative ({run['steering']}) at {int(high['level'] * 100)}%: shift {_num(run['shift'])} vs "
                f"{_num(high['shift'])} unsteered (difference {_num(run['shift'] - high['shift'])}; the unsteered "
                f"{int(low['level'] * 100)}% dataset gives {_num(low['shift'])}); loss without hooks "
                f"{_num(run['loss_without_hooks'], 3)} vs {_num(high['loss_without_hooks'], 3)}, training loss as "
                f"optimized {_num(run['train_loss_last_epoch'], 3)} vs {_num(high['train_loss_last_epoch'], 3)}."
            )
    return lines


def write_markdown(results: dict[str, Any], path: Path) -> None:
    settings = results["settings"]
    lines = [
        "# Validation on the embedded model: does ΔP predict the finetuning shift?",
        "",
        "Produced by `make validate` (`experiments/validate.py`); every number below comes from that run's",
        "`experiments/results.json`; only a final section headed *hand-written* (if present) is not generated.",
        "",
        *(
            ["**PARTIAL: the run was still going (or was stopped) when this file was written.**", ""]
            if results.get("partial") or results.get("interrupted")
            else []
        ),
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
        "last prompt token (`datalint_persona.analysis.shift`).",
        f"- Answer projection: greedy answers ({settings['gen_tokens']} new tokens) to {settings['gen_questions']} "
        "evaluation questions by the finetuned model, projected with the *base* model (mean response "
        "activation · v̂).",
        f"- Preventative steering (`datalint_persona.analysis.preventative`): during training forward passes only, "
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
        for run in sorted(trait["runs"], key=lambda r: (r["steering"] != "none", r["steering"], r["level"])):
            steering = "none" if run["steering"] == "none" else f"{run['steering']}"
            if run["steering"] == "add":
                steering = f"add {run['steer_alpha']}·v"
            lines.append(
                f"| {int(run['level'] * 100)}% | {steering} | {run['n_trait_samples']}/{run['n_samples']} | "
                f"{_num(run['delta_p'])} | {_num(run['shift'])} ± {_num(run['shift_sd'])} | "
                f"{_num(run['train_loss_last_epoch'], 3)} | {_num(run['loss_without_hooks'], 3)} | "
                f"{_num(run['answer_projection'])} | {run['seconds_total']} |"
            )
        lines += ["", *_summary(trait["runs"])]
        lines += [
            f"- Pearson r (ΔP before vs shift after, {len([r for r in trait['runs'] if r['steering'] == 'none'])} "
            f"datasets, no steering): **{_num(trait.get('pearson_delta_p_vs_shift'), 3)}**",
            f"- Pearson r (ΔP before vs answer projection after): "
            f"{_num(trait.get('pearson_delta_p_vs_answer_projection'), 3)}",
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


def results_from_log(log: Path, command: str, seconds_total: float) -> dict[str, Any]:
    """Rebuild the results of an interrupted run from the per-run JSON lines validate.py prints.

    Trait-level numbers that are printed only at the end (the base model's answer projection) are
    missing; the layer and vector norm are re-read from the bundled vectors.
    """
    import numpy as np
    from validate import pearson, settings_and_machine  # type: ignore[import-not-found]

    from datalint_persona.model.loading import DEFAULT_MODEL
    from datalint_persona.persona.store import find_vectors

    runs: dict[str, list[dict[str, Any]]] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.startswith('{"trait"'):
            row = json.loads(line)
            runs.setdefault(row.pop("trait"), []).append(row)
    traits = []
    for name, rows in runs.items():
        vector = find_vectors(None, DEFAULT_MODEL, [name])[0]
        plain = [r for r in rows if r["steering"] == "none"]
        answered = [r for r in plain if r["answer_projection"] is not None]
        traits.append(
            {
                "trait": name,
                "layer": vector.chosen_layer,
                "vector_norm": float(np.linalg.norm(vector.vectors[vector.chosen_layer])),
                "base_answer_projection": None,
                "runs": rows,
                "pearson_delta_p_vs_shift": pearson(
                    [r["delta_p"] for r in plain], [r["shift"] for r in plain]
                ),
                "pearson_delta_p_vs_answer_projection": pearson(
                    [r["delta_p"] for r in answered], [r["answer_projection"] for r in answered]
                ),
            }
        )
    settings, machine = settings_and_machine(command.split()[2:])
    plain = [r for t in traits for r in t["runs"] if r["steering"] == "none"]
    return {
        "command": command,
        "settings": settings,
        "machine": machine,
        "model": {"name": DEFAULT_MODEL, "identity": "see vectors/smollm2-135m-instruct/*.json"},
        "traits": traits,
        "pooled": {
            "n": len(plain),
            "pearson": pearson([r["delta_p"] for r in plain], [r["shift"] for r in plain]),
        },
        "seconds_total": seconds_total,
        "interrupted": True,
    }


if __name__ == "__main__":
    # results_markdown.py RESULTS.json RESULTS.md
    # results_markdown.py --from-log LOG "COMMAND" SECONDS RESULTS.json RESULTS.md
    if sys.argv[1] == "--from-log":
        rebuilt = results_from_log(Path(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
        Path(sys.argv[5]).write_text(json.dumps(rebuilt, indent=2) + "\n", encoding="utf-8")
        write_markdown(rebuilt, Path(sys.argv[6]))
    else:
        write_markdown(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")), Path(sys.argv[2]))
