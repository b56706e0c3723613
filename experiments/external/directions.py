"""Which training text and which estimator give a direction that carries over to other people's
text? Fits directions on some corpora and measures them on others, from the activations that
``collect.py`` stored (never on the data a direction was fit on).

    python experiments/external/directions.py --acts experiments/.work/acts --trait evil

Training sets: the trait file's extraction pairs (``trait``), own varied pairs (``own``), the fit
split of an external set (``ext``), and their unions. Estimators: mean difference, a logistic probe
with C chosen by 5-fold cross-validation on the training set, and a shrinkage-whitened mean
difference (LDA). Each training source is weighted equally, whatever its size.

Test sets: the trait file's calibration pairs, an independently written own set (``eval_TRAIT``),
and the test split of the external set. Scores are ΔP, (a(y) - a(y')) . v-hat, and the raw projection.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

SHORT = {"external-test": "ext", "own-independent": "own", "trait-held-out": "held"}
EXTERNAL = {"evil": "hh_rlhf", "hallucination": "halueval", "sycophancy": None}


def load(directory: Path, name: str) -> tuple[dict, dict[str, np.ndarray]] | None:
    path = directory / f"{name}.npz"
    if not path.exists():
        return None
    data = np.load(path)
    return json.loads(str(data["meta"])), {k: data[k] for k in data.files if k.startswith("acts_")}


def pairs_of(directory: Path, name: str, split: str | None) -> dict[str, np.ndarray] | None:
    """{positive, negative, y_prime} activations (n, layers, d) of a corpus's rows in ``split``."""
    loaded = load(directory, name)
    if loaded is None:
        return None
    meta, acts = loaded
    keep = np.array([split is None or s == split for s in meta["splits"]])
    return {k.removeprefix("acts_"): v[keep] for k, v in acts.items()}


def external_of(directory: Path, trait: str, split: str) -> dict[str, np.ndarray] | None:
    """The external set as pairs: positive = the trait answer, negative = the clean one."""
    source = EXTERNAL[trait]
    if source == "hh_rlhf":
        rows = pairs_of(directory, "hh_rlhf", split)
        if rows is None:
            return None
        return {
            "positive": rows["rejected"],
            "negative": rows["chosen"],
            "y_prime": rows["y_prime"],
            "paired": True,
        }
    if source == "halueval":
        bad = pairs_of(directory, "halueval_hallucinated", split)
        good = pairs_of(directory, "halueval_clean", split)
        if bad is None or good is None:
            return None
        return {
            "positive": bad["y"],
            "negative": good["y"],
            "y_prime_positive": bad["y_prime"],
            "y_prime_negative": good["y_prime"],
            "paired": False,
        }
    return None


def training_sets(directory: Path, trait: str) -> dict[str, list[dict]]:
    trait_file = pairs_of(directory, f"trait_{trait}", "extraction")
    own = pairs_of(directory, f"train_{trait}", None)
    ext = external_of(directory, trait, "fit")
    parts = {"trait": trait_file, "own": own, "ext": ext}
    combos = {
        "trait": ["trait"],
        "own": ["own"],
        "ext": ["ext"],
        "trait+own": ["trait", "own"],
        "trait+ext": ["trait", "ext"],
        "trait+own+ext": ["trait", "own", "ext"],
    }
    return {
        name: [parts[p] for p in members]
        for name, members in combos.items()
        if all(parts[p] is not None for p in members)
    }


def stacked(sources: list[dict], layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and weights (each source and class sums to the same weight)."""
    xs, ys, ws = [], [], []
    for source in sources:
        for label, key in ((1, "positive"), (0, "negative")):
            x = source[key][:, layer].astype(np.float64)
            xs.append(x)
            ys.append(np.full(len(x), label))
            ws.append(np.full(len(x), 1.0 / len(x)))
    return (
        np.concatenate(xs),
        np.concatenate(ys),
        np.concatenate(ws) * len(np.concatenate(ys)) / (2 * len(sources)),
    )


def fit(estimator: str, sources: list[dict], layer: int) -> np.ndarray:
    x, y, w = stacked(sources, layer)
    if estimator == "mean-difference":
        return sum(s["positive"][:, layer].mean(0) - s["negative"][:, layer].mean(0) for s in sources) / len(
            sources
        )
    if estimator == "probe":  # the product's: C = 0.1 on standardized features
        from sklearn.linear_model import LogisticRegression

        scaler = StandardScaler().fit(x)
        probe = LogisticRegression(C=0.1, max_iter=5000).fit(scaler.transform(x), y, sample_weight=w)
        return probe.coef_[0] / scaler.scale_
    if estimator == "probe-cv":
        scaler = StandardScaler().fit(x)
        probe = LogisticRegressionCV(Cs=[0.001, 0.01, 0.1, 1.0], cv=5, max_iter=3000, scoring="roc_auc")
        probe.fit(scaler.transform(x), y, sample_weight=w)
        return probe.coef_[0] / scaler.scale_
    if estimator == "lda":
        lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(x, y)
        return lda.coef_[0]
    raise ValueError(estimator)


def evaluate(direction: np.ndarray, test: dict, layer: int) -> dict[str, float]:
    unit = direction / np.linalg.norm(direction)
    pos = test["positive"][:, layer] @ unit
    neg = test["negative"][:, layer] @ unit
    if "y_prime" in test:
        ref_pos = ref_neg = test["y_prime"][:, layer] @ unit
    else:
        ref_pos = test["y_prime_positive"][:, layer] @ unit
        ref_neg = test["y_prime_negative"][:, layer] @ unit
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    out = {
        "dp_auroc": float(roc_auc_score(labels, np.r_[pos - ref_pos, neg - ref_neg])),
        "raw_auroc": float(roc_auc_score(labels, np.r_[pos, neg])),
    }
    if test.get("paired", True) and len(pos) == len(neg):
        out["paired"] = float(np.mean(pos > neg))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--acts", type=Path, required=True)
    parser.add_argument("--trait", required=True)
    parser.add_argument("--layers", default="0,8,10,12,14,15,16,17,18,20,22")
    parser.add_argument("--estimators", default="mean-difference,probe,probe-cv,lda")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    tests = {
        "trait-held-out": pairs_of(args.acts, f"trait_{args.trait}", "calibration"),
        "own-independent": pairs_of(args.acts, f"eval_{args.trait}", None),
        "external-test": external_of(args.acts, args.trait, "test"),
    }
    tests = {k: v for k, v in tests.items() if v is not None}
    rows = []
    for name, sources in training_sets(args.acts, args.trait).items():
        for estimator in args.estimators.split(","):
            for layer in map(int, args.layers.split(",")):
                direction = fit(estimator, sources, layer)
                row = {"train": name, "estimator": estimator, "layer": layer}
                for test_name, test in tests.items():
                    for metric, value in evaluate(direction, test, layer).items():
                        row[f"{test_name}:{metric}"] = value
                rows.append(row)
                cells = " ".join(
                    f"{SHORT.get(k.split(':')[0], k.split(':')[0])}:{k.split(':')[1]}={v:.2f}"
                    for k, v in row.items()
                    if isinstance(v, float)
                )
                print(f"{name:14} {estimator:15} L{layer:<2} {cells}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
