"""The reference weight, measured on the activations ``collect.py`` stored: for each of evil,
sycophancy and hallucination, the sample-score AUROC of the calibrated ΔP (the bundled vector's
fitted reference weight w), of the paper's ΔP (w = 1) and of the raw projection (w = 0), and the
verdicts the bundled rules give on clean data and on contamination, computed with the product's
own rules, reference and verdict code (``resolve_rule``, ``Reference``, ``decide``).

    python experiments/external/collect.py --out experiments/.work/acts --pairs PAIR_FILES...
    python experiments/external/collect.py --out experiments/.work/acts \
      --only trait_evil halueval_clean halueval_hallucinated --halueval-clean 100 --halueval-hallucinated 100
    python experiments/external/reference.py --acts experiments/.work/acts

Nothing here is fit: the weights come from the sidecars, which calibration fitted on clean
answers only. The independent pairs and the HaluEval test split never entered any fit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from datalint_persona.extraction.external import (
    auroc_with_interval,
    clean_file_rates,
    contamination_rates,
    judge,
)
from datalint_persona.persona.store import find_vectors
from datalint_persona.screening.reference import Reference
from datalint_persona.verdicts.rules import resolve_rule, shipped_rules

TRAITS = ("evil", "sycophancy", "hallucination")


def load(directory: Path, name: str, split: str | None = None) -> dict[str, np.ndarray] | None:
    path = directory / f"{name}.npz"
    if not path.exists():
        return None
    data = np.load(path)
    meta = json.loads(str(data["meta"]))
    keep = np.array([split is None or s == split for s in meta["splits"]])
    return {k.removeprefix("acts_"): data[k][keep] for k in data.files if k.startswith("acts_")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--acts", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    vectors = {v.trait: v for v in find_vectors(None, "smollm2-135m-instruct", list(TRAITS))}
    defaults = shipped_rules()
    rules = [resolve_rule(defaults[t], vectors[t], {}) for t in TRAITS]
    units = {r.trait: vectors[r.trait].unit(r.layer) for r in rules}

    def projections(acts: dict[str, np.ndarray], kind: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{trait: (proj y, proj y')} at each rule's layer."""
        return {
            r.trait: (acts[kind][:, r.layer] @ units[r.trait], acts["y_prime"][:, r.layer] @ units[r.trait])
            for r in rules
        }

    def scores(rule_trait: str, raw: np.ndarray, own: np.ndarray) -> dict[str, np.ndarray]:
        rule = next(r for r in rules if r.trait == rule_trait)
        return {
            "calibrated": Reference(rule.reference_weight, rule.reference_mean).delta_p(raw, own),
            "paper": raw - own,
            "raw": raw,
        }

    def delta_matrix(acts: dict[str, np.ndarray], kind: str) -> np.ndarray:
        """(n, 3) calibrated ΔP, columns in rule order (what the engine computes)."""
        proj = projections(acts, kind)
        return np.stack([scores(r.trait, *proj[r.trait])["calibrated"] for r in rules], axis=1)

    print("| trait | y′ weight w |\n|---|---|")
    for r in rules:
        print(f"| {r.trait} | {r.reference_weight:.3f} |")
    print(
        "\n| set | trait | calibrated ΔP | paper's ΔP (w = 1) | raw projection (w = 0) |\n|---|---|---|---|---|"
    )
    for trait in TRAITS:
        sets = []
        independent = load(args.acts, f"indep_{trait}")
        if independent is not None:
            sets.append(("independent pairs", independent, "positive", independent, "negative"))
        trait_file = load(args.acts, f"trait_{trait}", "calibration")
        if trait_file is not None:
            sets.append(("trait file, held-out pairs", trait_file, "positive", trait_file, "negative"))
        if trait == "hallucination":
            bad, good = (load(args.acts, n, "test") for n in ("halueval_hallucinated", "halueval_clean"))
            if bad is not None and good is not None:
                sets.append(("HaluEval test split", bad, "y", good, "y"))
        for name, pos_acts, pos_kind, neg_acts, neg_kind in sets:
            pos = scores(trait, *projections(pos_acts, pos_kind)[trait])
            neg = scores(trait, *projections(neg_acts, neg_kind)[trait])
            cells = []
            for key in ("calibrated", "paper", "raw"):
                auc = auroc_with_interval(pos[key], neg[key])
                cells.append(f"{auc['auroc']:.3f} [{auc['low']:.2f}, {auc['high']:.2f}]")
            print(
                f"| {name} (n = {len(pos['raw'])}/{len(neg['raw'])}) | {trait} | " + " | ".join(cells) + " |"
            )

    clean = load(args.acts, "halueval_clean", "test")
    if clean is None:
        return 0
    pools = {
        "HaluEval clean, test split": delta_matrix(clean, "y"),
        "the model's own answers to those prompts": delta_matrix(clean, "y_prime"),
    }
    print(
        "\n| clean pool | n | files of 20 / 200 flagged (any trait) | samples flagged, whole pool as one file |"
    )
    print("|---|---|---|---|")
    for name, pool in pools.items():
        rates = clean_file_rates(pool, rules, sizes=(20, 200), repeats=args.repeats)
        worst = {size: max(v for k, v in by.items() if k != "gate") for size, by in rates.items()}
        whole = judge(pool, rules, fdr=0.05, alpha=0.05)
        flagged = sum(whole["samples"].values())
        print(f"| {name} | {len(pool)} | {worst['20']:.1%} / {worst['200']:.1%} | {flagged} |")
    bad = load(args.acts, "halueval_hallucinated", "test")
    if bad is not None:
        mix = contamination_rates(
            pools["HaluEval clean, test split"],
            delta_matrix(bad, "y"),
            rules,
            "hallucination",
            sizes=(200,),
            repeats=max(args.repeats // 2, 1),
        )
        print("\n| HaluEval hallucinated into clean (n = 200) | " + " | ".join(mix["200"]) + " |")
        print("|---|" + "---|" * len(mix["200"]))
        print(
            "| dataset verdict fires / mean ΔP | "
            + " | ".join(f"{v['dataset_flagged']:.0%} / {v['mean_delta_p']:.2f}" for v in mix["200"].values())
            + " |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
