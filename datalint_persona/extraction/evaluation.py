"""Leave-one-style-out evaluation: does a vector built from some answer styles work on another?

For every style, vectors are built from the pairs of all *other* styles (extraction and calibration
pairs together) and tested on the held-out style's pairs. Variants of the direction are compared on
the same activations, next to two lexical baselines: the same method at layer 0 (an average of
token embeddings) and a TF-IDF logistic regression trained on the same answers' text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona.extraction.contrastive import pair_activations, response_activations
from datalint_persona.model.backends import GenerationSettings
from datalint_persona.persona.traits import TraitDefinition, TraitPair
from datalint_persona.screening.generation import DEFAULT_MAX_NEW_TOKENS, generate_y_prime
from datalint_persona.stats import auroc, cohens_d, threshold_at_fpr, tpr_at_threshold

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel

TARGET_FPR = 0.05


@dataclass(frozen=True)
class PairActivations:
    """Mean response activations at every layer, each (n_pairs, L + 1, hidden)."""

    pairs: tuple[TraitPair, ...]
    positive: np.ndarray
    negative: np.ndarray
    y_prime: np.ndarray

    def subset(self, mask: np.ndarray) -> PairActivations:
        kept = tuple(p for p, keep in zip(self.pairs, mask, strict=True) if keep)
        return PairActivations(kept, self.positive[mask], self.negative[mask], self.y_prime[mask])


def collect(
    loaded: LoadedModel, trait: TraitDefinition, *, batch_size: int = 16, cache_dir: str | None = None
) -> PairActivations:
    """Activations of every pair of the trait file, and of the model's own y' to each prompt."""
    pairs = (*trait.pairs, *trait.calibration)
    positive, negative = pair_activations(loaded, pairs, batch_size=batch_size)
    settings = GenerationSettings(max_new_tokens=DEFAULT_MAX_NEW_TOKENS)
    generations, _ = generate_y_prime(
        loaded, [p.prompt for p in pairs], settings, cache_dir=cache_dir, batch_size=batch_size
    )
    y_prime = response_activations(
        loaded, [p.prompt for p in pairs], [g.text for g in generations], batch_size=batch_size
    )
    return PairActivations(pairs, positive, negative, y_prime)


# A direction builder maps training activations (positive, negative: (n, L+1, d)) and a layer to a
# function that scores activations (n, L+1, d) -> (n,).
Scorer = Callable[[np.ndarray], np.ndarray]


def _unit(direction: np.ndarray) -> np.ndarray:
    unit: np.ndarray = direction / np.linalg.norm(direction)
    return unit


def mean_difference(pos: np.ndarray, neg: np.ndarray, layer: int) -> Scorer:
    """The paper's direction: mean(positive) - mean(negative) at one layer."""
    unit = _unit(pos[:, layer].mean(0) - neg[:, layer].mean(0))
    return lambda acts: acts[:, layer] @ unit


def layer_average(pos: np.ndarray, neg: np.ndarray, layer: int, width: int = 2) -> Scorer:
    """Mean of per-layer mean-difference projections over layer-width..layer+width."""
    top = pos.shape[1] - 2
    layers = range(max(1, layer - width), min(top, layer + width) + 1)
    scorers = [mean_difference(pos, neg, l_) for l_ in layers]
    return lambda acts: np.mean([s(acts) for s in scorers], axis=0)


def norm_scaled(pos: np.ndarray, neg: np.ndarray, layer: int) -> Scorer:
    """Mean difference of activations divided by their residual-stream norm."""

    def scale(acts: np.ndarray) -> np.ndarray:
        scaled: np.ndarray = acts[:, layer] / np.linalg.norm(acts[:, layer], axis=1, keepdims=True)
        return scaled

    unit = _unit(scale(pos).mean(0) - scale(neg).mean(0))
    return lambda acts: scale(acts) @ unit


def probe(pos: np.ndarray, neg: np.ndarray, layer: int, *, c: float = 0.1) -> Scorer:
    """An L2-regularized logistic-regression direction on standardized activations (inverse
    regularization ``c``: the bundled vector's own, where one is given)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([pos[:, layer], neg[:, layer]])
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(x, y)
    return lambda acts: model.decision_function(acts[:, layer])


def half_the_pairs(pos: np.ndarray, neg: np.ndarray, layer: int) -> Scorer:
    """The mean difference from a seeded random half of the training pairs: do more pairs help?"""
    keep = np.random.default_rng(0).permutation(len(pos))[: max(1, len(pos) // 2)]
    return mean_difference(pos[keep], neg[keep], layer)


VARIANTS: dict[str, Callable[[np.ndarray, np.ndarray, int], Scorer]] = {
    "mean-diff": mean_difference,
    "mean-diff, half the pairs": half_the_pairs,
    "mean-diff, layers ±2": layer_average,
    "mean-diff, norm-scaled": norm_scaled,
    "logistic probe": probe,
}


def _figures(pos_scores: np.ndarray, neg_scores: np.ndarray) -> dict[str, float]:
    threshold = threshold_at_fpr(neg_scores, TARGET_FPR)
    return {
        "auroc": auroc(pos_scores, neg_scores),
        "cohens_d": cohens_d(pos_scores, neg_scores),
        "tpr_at_5_fpr": tpr_at_threshold(pos_scores, threshold),
    }


def _tfidf_auroc(train: Sequence[TraitPair], test: Sequence[TraitPair]) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = [p.positive for p in train] + [p.negative for p in train]
    labels = np.r_[np.ones(len(train)), np.zeros(len(train))]
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(C=10.0, max_iter=2000)
    ).fit(texts, labels)
    pos = model.decision_function([p.positive for p in test])
    neg = model.decision_function([p.negative for p in test])
    return auroc(pos, neg)


VARIANT_OF_DIRECTION = {"probe": "logistic probe", "mean-difference": "mean-diff"}


def leave_one_style_out(
    data: PairActivations, layer: int, *, direction: str = "probe", probe_c: float = 0.1
) -> dict[str, Any]:
    """Per held-out style: vector figures (raw projection and ΔP) per variant, and the baselines.

    ``direction`` names the bundled vectors' kind; its variant is the one the Markdown tables lead
    with. ``probe_c``: the probe variant's C (the bundled vector's).
    """
    variants: dict[str, Callable[[np.ndarray, np.ndarray, int], Scorer]] = {
        **VARIANTS,
        "logistic probe": functools.partial(probe, c=probe_c),
    }
    styles = sorted({p.style for p in data.pairs})
    table: dict[str, Any] = {}
    for style in styles:
        held = np.array([p.style == style for p in data.pairs])
        train, test = data.subset(~held), data.subset(held)
        row: dict[str, Any] = {"n_test_pairs": int(held.sum()), "variants": {}}
        for name, build in variants.items():
            score = build(train.positive, train.negative, layer)
            pos, neg, base = score(test.positive), score(test.negative), score(test.y_prime)
            row["variants"][name] = {"raw": _figures(pos, neg), "delta_p": _figures(pos - base, neg - base)}
        lexical = mean_difference(train.positive, train.negative, 0)
        base0 = lexical(test.y_prime)
        row["layer0_delta_p"] = _figures(lexical(test.positive) - base0, lexical(test.negative) - base0)
        row["tfidf_auroc"] = _tfidf_auroc(train.pairs, test.pairs)
        table[style] = row
    return {"layer": layer, "variant": VARIANT_OF_DIRECTION[direction], "probe_c": probe_c, "styles": table}


def _variant_name(result: dict[str, Any]) -> str:
    variant = str(result.get("variant", "mean-diff"))
    return (
        f"{variant}, C = {result['probe_c']:g}"
        if variant == "logistic probe" and "probe_c" in result
        else variant
    )


def markdown(trait: str, result: dict[str, Any]) -> str:
    """The leave-one-style-out matrix of one trait, for vectors/README.md."""
    lines = [
        f"\n### {trait} (layer {result['layer']}, {_variant_name(result)})\n",
        "| held-out style | pairs | ΔP AUROC | ΔP d | ΔP TPR @ 5% FPR | raw AUROC | layer-0 ΔP AUROC "
        "| TF-IDF AUROC | beats both lexical baselines? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for style, row in result["styles"].items():
        vector = row["variants"][result.get("variant", "mean-diff")]
        delta, raw = vector["delta_p"], vector["raw"]
        lexical_best = max(row["layer0_delta_p"]["auroc"], row["tfidf_auroc"])
        verdict = "yes" if delta["auroc"] > lexical_best else "**no**"
        lines.append(
            f"| {style} | {row['n_test_pairs']} | {delta['auroc']:.2f} | {delta['cohens_d']:.2f} "
            f"| {delta['tpr_at_5_fpr']:.2f} | {raw['auroc']:.2f} | {row['layer0_delta_p']['auroc']:.2f} "
            f"| {row['tfidf_auroc']:.2f} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def variant_summary(results: dict[str, dict[str, Any]]) -> str:
    """Mean over held-out styles of the ΔP AUROC (raw projection in parentheses) per variant."""
    names = list(VARIANTS)
    lines = [
        "\n| trait | " + " | ".join(names) + " | layer-0 ΔP | TF-IDF |",
        "|---|" + "---|" * (len(names) + 2),
    ]
    for trait, result in results.items():
        rows = list(result["styles"].values())
        cells = []
        for name in names:
            delta = np.mean([r["variants"][name]["delta_p"]["auroc"] for r in rows])
            raw = np.mean([r["variants"][name]["raw"]["auroc"] for r in rows])
            cells.append(f"{delta:.3f} ({raw:.3f})")
        layer0 = np.mean([r["layer0_delta_p"]["auroc"] for r in rows])
        tfidf = np.mean([r["tfidf_auroc"] for r in rows])
        lines.append(f"| {trait} | " + " | ".join(cells) + f" | {layer0:.3f} | {tfidf:.3f} |")
    return "\n".join(lines) + "\n"


def evaluate_traits(
    traits: Sequence[str],
    *,
    model: str,
    vectors_dir: str | None = None,
    batch_size: int = 16,
    cache_dir: str | None = None,
    device: str = "cpu",
    status: Callable[[str], AbstractContextManager[object]] | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Leave-one-style-out for each trait (name or .yaml), at the layer and direction of its vector
    in ``vectors_dir`` [default: bundled for ``model``]; yields (trait, result) as each finishes."""
    from datalint_persona.model.loading import load_model, resolve_model
    from datalint_persona.persona.store import find_vectors
    from datalint_persona.persona.traits import load_trait, shipped_trait_path

    show = status or (lambda _text: nullcontext())
    definitions = [load_trait(shipped_trait_path(name)) for name in traits]
    bundled = {v.trait: v for v in find_vectors(vectors_dir, model, [d.trait for d in definitions])}
    with show(f"Loading {model}"):
        loaded = load_model(resolve_model(model), device=device)
    for definition in definitions:
        with show(f"{definition.trait}: activations of every pair and of y'"):
            data = collect(loaded, definition, batch_size=batch_size, cache_dir=cache_dir)
        vector = bundled[definition.trait]
        c = vector.metadata.get("probe_c") or 0.1
        yield (
            definition.trait,
            leave_one_style_out(data, vector.chosen_layer, direction=vector.direction, probe_c=float(c)),
        )
