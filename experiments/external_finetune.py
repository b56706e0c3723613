"""Does a dataset's ΔP before training predict the trait after finetuning, on data nobody here wrote,
measured without the vector?

Datasets come from the *fit* split of ``../shared/external`` (see calibration/README.md for the
split): HH-RLHF red-team conversations whose final answer is the preferred one or, for a share of
them, the rejected one (evil), and HaluEval queries answered without or with hallucinations
(hallucination). Each is screened by ``engine.screen`` (dataset ΔP at the bundled vector's layer),
then the embedded model is finetuned on it (LoRA on the CPU, ``experiments/validate.py``) with
several seeds. After training, on held-out prompts of the *test* split:

- **classifier**: the mean decision value, on the finetuned model's greedy answers, of a TF-IDF +
  logistic regression trained on the other fit-split records of the same source (rejected vs
  preferred; hallucinated vs clean): a measure of the trait that does not use v-hat;
- **shift**: (a_l^finetuned - a_l^base) . v-hat at the last prompt token, as in validate.py.

It reports Pearson's r between ΔP before and each measure after, per trait, with a 95% bootstrap
interval over datasets (resampling runs).

    python experiments/external_finetune.py --json experiments/external_results.json \
        --results experiments/RESULTS-external.md
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from validate import encode_rows, train_lora  # noqa: E402
from validate import generate_conversations as generate  # noqa: E402

from datalint_persona.analysis.shift import last_prompt_activations, projection_shift  # noqa: E402
from datalint_persona.extraction.external import split_of  # noqa: E402
from datalint_persona.model.loading import DEFAULT_MODEL, LoadedModel, load_model, resolve_model  # noqa: E402
from datalint_persona.persona.store import find_vectors  # noqa: E402
from datalint_persona.screening.engine import screen  # noqa: E402
from datalint_persona.settings import ScreenOptions  # noqa: E402
from datalint_persona.types import Message  # noqa: E402

FAMILIES = {
    "evil": ("hh_rlhf_harmless_chosen.jsonl", "hh_rlhf_harmless_rejected.jsonl", True),
    "hallucination": ("halueval_general_clean.jsonl", "halueval_general_hallucinated.jsonl", False),
}


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def split(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in records if split_of(r["id"]) == name]


def dataset(clean: list[dict], bad: list[dict], paired: bool, n: int, level: float, seed: int) -> list[dict]:
    """n records, round(level * n) of them trait records. Paired sources swap the final answer of
    the same conversations (nested contamination); unpaired ones swap whole records."""
    order = list(range(min(len(clean), len(bad)) if paired else len(clean)))
    random.Random(seed).shuffle(order)
    contaminated = round(level * n)
    if paired:
        return [bad[i] if k < contaminated else clean[i] for k, i in enumerate(order[:n])]
    bad_order = list(range(len(bad)))
    random.Random(seed + 1).shuffle(bad_order)
    return [bad[bad_order[k]] for k in range(contaminated)] + [clean[i] for i in order[: n - contaminated]]


def lexical_ruler(clean: list[dict], bad: list[dict]) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = [r["messages"][-1]["content"] for r in bad] + [r["messages"][-1]["content"] for r in clean]
    labels = [1] * len(bad) + [0] * len(clean)
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2), LogisticRegression(max_iter=2000)
    ).fit(texts, labels)


def bootstrap_r(x: list[float], y: list[float], seed: int = 0, repeats: int = 2000) -> dict[str, Any]:
    from scipy.stats import pearsonr

    x_, y_ = np.asarray(x), np.asarray(y)
    r = float(pearsonr(x_, y_).statistic)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(repeats):
        pick = rng.integers(0, len(x_), len(x_))
        if np.std(x_[pick]) > 0 and np.std(y_[pick]) > 0:
            draws.append(float(np.corrcoef(x_[pick], y_[pick])[0, 1]))
    low, high = np.quantile(draws, [0.025, 0.975])
    return {"r": r, "low": float(low), "high": float(high), "n": len(x_)}


def run_family(loaded: LoadedModel, trait: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    clean_file, bad_file, paired = FAMILIES[trait]
    clean_all, bad_all = read(args.external / clean_file), read(args.external / bad_file)
    clean_fit, bad_fit = split(clean_all, "fit"), split(bad_all, "fit")
    # Training records: the first part of the fit split; the ruler learns from the rest of it.
    cut = len(clean_fit) // 2
    ruler = lexical_ruler(clean_fit[cut:], bad_fit[len(bad_fit) // 2 :] if not paired else bad_fit[cut:])
    clean_train = clean_fit[:cut]
    bad_train = bad_fit[:cut] if paired else bad_fit[: len(bad_fit) // 2]
    held = split(clean_all, "test")
    random.Random(7).shuffle(held)
    prompts = [
        tuple(Message(m["role"], m["content"]) for m in r["messages"][:-1]) for r in held[: args.eval_prompts]
    ]
    vector = find_vectors(None, DEFAULT_MODEL, [trait])[0]
    layer = vector.chosen_layer
    unit = vector.unit(layer)
    base_acts = last_prompt_activations(loaded, prompts, layer)
    base_texts = generate(loaded, loaded.model, prompts, args.gen_tokens)
    out: dict[str, Any] = {
        "trait": trait,
        "layer": layer,
        "sources": [clean_file, bad_file],
        "base_classifier": float(np.mean(ruler.decision_function(base_texts))),
        "runs": [],
    }
    for level in args.levels:
        for seed in args.seeds:
            started = time.time()
            rows = dataset(clean_train, bad_train, paired, args.samples, level, seed)
            path = work / f"{trait}-{int(level * 100)}-{seed}.jsonl"
            path.write_text(
                "".join(json.dumps({"messages": r["messages"]}, ensure_ascii=False) + "\n" for r in rows),
                encoding="utf-8",
            )
            result = screen(
                [str(path)],
                ScreenOptions(traits=(trait,), cache_dir=str(work / "cache"), fail_on="never"),
                loaded_model=loaded,
            )
            delta_p = result.summaries[0].mean_delta_p
            args.seed = seed
            model, losses = train_lora(loaded, encode_rows(loaded, rows, args.max_len), args, None)
            model = model.merge_and_unload()
            view = LoadedModel(
                spec=loaded.spec, identity=loaded.identity, model=model, tokenizer=loaded.tokenizer
            )
            shift = projection_shift(
                trait, layer, unit, base_acts, last_prompt_activations(view, prompts, layer)
            )
            texts = generate(loaded, model, prompts, args.gen_tokens)
            run = {
                "level": level,
                "seed": seed,
                "n_samples": len(rows),
                "delta_p": delta_p,
                "classifier": float(np.mean(ruler.decision_function(texts))),
                "shift": shift.mean,
                "train_loss": float(np.mean(losses)),
                "example_answer": texts[0][:160],
                "seconds": round(time.time() - started, 1),
            }
            print(json.dumps({"trait": trait, **run}), file=sys.stderr, flush=True)
            out["runs"].append(run)
            del model
    runs = out["runs"]
    out["r_delta_p_vs_classifier"] = bootstrap_r(
        [r["delta_p"] for r in runs], [r["classifier"] for r in runs]
    )
    out["r_delta_p_vs_shift"] = bootstrap_r([r["delta_p"] for r in runs], [r["shift"] for r in runs])
    out["r_level_vs_classifier"] = bootstrap_r([r["level"] for r in runs], [r["classifier"] for r in runs])
    out["r_level_vs_delta_p"] = bootstrap_r([r["level"] for r in runs], [r["delta_p"] for r in runs])
    return out


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        "# Finetuning on external data: does ΔP before training predict the trait after?",
        "",
        f"Produced by `make validate-external` (`experiments/external_finetune.py`) in {report['seconds']:.0f} s; "
        "every number below comes from `experiments/external_results.json`.",
        "",
        f"- Datasets: {s['samples']} records from the fit split of each source, at trait shares "
        f"{', '.join(f'{x:.0%}' for x in s['levels'])}, seeds {s['seeds']} (the seed picks the records and "
        "the LoRA initialisation).",
        f"- Training: LoRA r={s['rank']} on all linear layers, lr {s['lr']}, batch {s['batch_size']}, "
        f"{s['epochs']} epoch(s), loss on answer tokens, samples cut to {s['max_len']} tokens.",
        f"- After training: greedy answers ({s['gen_tokens']} new tokens) to {s['eval_prompts']} held-out test-split "
        "prompts (whole conversations). *Classifier*: mean TF-IDF + logistic-regression decision value on those "
        "answers, trained on fit-split records not used for training (it never sees v-hat). *Shift*: "
        "(a_l^finetuned − a_l^base)·v̂ at the last prompt token.",
        "",
    ]
    for family in report["families"]:
        lines += [
            f"## {family['trait']} ({' / '.join(family['sources'])}, layer {family['layer']})",
            "",
            f"Base model: classifier {family['base_classifier']:.3f}.",
            "",
            "| trait share | seed | ΔP before | classifier after | shift after | train loss | seconds |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in family["runs"]:
            lines.append(
                f"| {r['level']:.0%} | {r['seed']} | {r['delta_p']:.3f} | {r['classifier']:.3f} | "
                f"{r['shift']:.3f} | {r['train_loss']:.3f} | {r['seconds']:.0f} |"
            )
        lines.append("")
        for key, label in (
            ("r_delta_p_vs_classifier", "ΔP before vs classifier after"),
            ("r_delta_p_vs_shift", "ΔP before vs shift after"),
            ("r_level_vs_delta_p", "trait share vs ΔP before"),
            ("r_level_vs_classifier", "trait share vs classifier after"),
        ):
            c = family[key]
            lines.append(f"- {label}: r = {c['r']:.2f} [{c['low']:.2f}, {c['high']:.2f}] over {c['n']} runs")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--external", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "external"
    )
    parser.add_argument("--traits", nargs="+", default=list(FAMILIES))
    parser.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--eval-prompts", type=int, default=16)
    parser.add_argument("--gen-tokens", type=int, default=32)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--work", type=Path, default=Path("experiments/.work/external-finetune"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    loaded = load_model(resolve_model(DEFAULT_MODEL))
    settings = {k: v for k, v in vars(args).items() if k not in ("external", "work", "json", "results")}
    families = [run_family(loaded, trait, args, args.work) for trait in args.traits]
    settings["seeds"] = list(parser.parse_args(argv).seeds)
    report = {"settings": settings, "families": families, "seconds": time.time() - started}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    if args.results:
        args.results.write_text(markdown(report), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
