"""Build persona vectors offline from teacher-forced contrastive pairs, and score layers.

The vector at layer l is mean(a_l(x, positive)) - mean(a_l(x, negative)) over the trait's extraction
pairs, where a_l is the mean over response tokens of hidden_states[l] (the paper's mean difference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from datalint_persona import __version__
from datalint_persona.model.activations import iter_mean_activations
from datalint_persona.model.capture import LAYER_CONVENTION
from datalint_persona.model.chat import encode_pair
from datalint_persona.persona.traits import TraitDefinition, TraitPair
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.stats import auroc, cohens_d
from datalint_persona.types import Message

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel

RANDOM_DIRECTIONS = 200
PROBE_C = 0.1  # the inverse regularization strength when it is not chosen (no groups to hold out)
PROBE_C_CANDIDATES = (0.001, 0.01, 0.1, 1.0)
PROBE_C_LAYER_FRACTIONS = (1 / 3, 1 / 2, 2 / 3)  # the layers C is chosen at, as fractions of depth
DirectionKind = Literal["probe", "mean-difference"]


def response_activations(
    loaded: LoadedModel,
    prompts: Sequence[Sequence[Message]],
    responses: Sequence[str],
    *,
    batch_size: int = 16,
    max_tokens: int = 2048,
) -> np.ndarray:
    """Mean response-token activations of each (prompt, response) at every layer: (n, L + 1, hidden)."""
    layers = list(range(loaded.num_layers + 1))
    # Never past the model's context: position embeddings (GPT-2) would index out of range.
    max_tokens = min(max_tokens, loaded.context_length)
    encoded = [
        encode_pair(loaded.tokenizer, prompt, response or " ", max_tokens=max_tokens)
        for prompt, response in zip(prompts, responses, strict=True)
    ]
    out = np.zeros((len(encoded), len(layers), loaded.hidden_size), dtype=np.float32)
    for batch, means in iter_mean_activations(loaded, encoded, layers, batch_size=batch_size):
        for layer in layers:
            out[batch, layer] = means[layer].cpu().numpy()
    return out


def pair_activations(
    loaded: LoadedModel, pairs: Sequence[TraitPair], *, batch_size: int = 16, max_tokens: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Mean response activations at every layer: (positive, negative), each (n, L + 1, hidden)."""
    out = response_activations(
        loaded,
        [*(p.prompt for p in pairs), *(p.negative_context for p in pairs)],
        [*(p.positive for p in pairs), *(p.negative for p in pairs)],
        batch_size=batch_size,
        max_tokens=max_tokens,
    )
    return out[: len(pairs)], out[len(pairs) :]


def layer_statistics(
    vectors: np.ndarray, held_positive: np.ndarray, held_negative: np.ndarray, *, seed: int = 0
) -> list[dict[str, float]]:
    """Per layer, on held-out pairs: Cohen's d and AUROC of the projections, and a random null.

    ``random_d95`` is the 95th percentile of |d| over random unit directions at the same layer:
    a layer only means something where its d clearly exceeds that.
    """
    rng = np.random.default_rng(seed)
    stats = []
    for layer in range(vectors.shape[0]):
        unit = vectors[layer] / np.linalg.norm(vectors[layer])
        pos, neg = held_positive[:, layer] @ unit, held_negative[:, layer] @ unit
        random_dirs = rng.standard_normal((vectors.shape[1], RANDOM_DIRECTIONS))
        random_dirs /= np.linalg.norm(random_dirs, axis=0, keepdims=True)
        rpos, rneg = held_positive[:, layer] @ random_dirs, held_negative[:, layer] @ random_dirs
        random_d = [abs(cohens_d(rpos[:, k], rneg[:, k])) for k in range(RANDOM_DIRECTIONS)]
        stats.append(
            {
                "layer": layer,
                "cohens_d": cohens_d(pos, neg),
                "auroc": auroc(pos, neg),
                "random_d95": float(np.quantile(random_d, 0.95)),
                "vector_norm": float(np.linalg.norm(vectors[layer])),
            }
        )
    return stats


def choose_layer(stats: Sequence[dict[str, float]]) -> int:
    """The residual-stream layer (1..L-1) with the largest held-out effect size."""
    candidates = [s for s in stats if 0 < s["layer"] < len(stats) - 1]
    return int(max(candidates, key=lambda s: s["cohens_d"])["layer"])


def source_weights(sizes: Sequence[int]) -> np.ndarray:
    """Per-pair weights under which every source of pairs weighs the same, whatever its size;
    they average to 1."""
    weights = np.concatenate([np.full(n, 1.0 / n) for n in sizes])
    return weights * len(weights) / len(sizes)


def probe_directions(
    positive: np.ndarray,
    negative: np.ndarray,
    *,
    c: float = PROBE_C,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Per layer, the direction of an L2-regularized logistic regression separating positive from
    negative activations (fit on standardized features), scaled to the mean difference's norm.

    ``w / scale`` maps the standardized weights back to activation space, so projecting onto the
    result ranks answers exactly as the probe's decision function does. Keeping the mean
    difference's norm keeps steering coefficients comparable. ``weights`` (one per pair, see
    :func:`source_weights`) weigh both answers of a pair. (n, L+1, d) x2 -> (L+1, d).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    labels = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    pair_weights = np.ones(len(positive)) if weights is None else np.asarray(weights, dtype=np.float64)
    sample_weight = np.r_[pair_weights, pair_weights]
    out = np.zeros(positive.shape[1:], dtype=np.float64)
    for layer in range(positive.shape[1]):
        features = np.concatenate([positive[:, layer], negative[:, layer]]).astype(np.float64)
        scaler = StandardScaler().fit(features)
        probe = LogisticRegression(C=c, max_iter=5000).fit(
            scaler.transform(features), labels, sample_weight=sample_weight
        )
        direction = probe.coef_[0] / scaler.scale_
        mean_difference = weighted_mean_difference(positive[:, layer], negative[:, layer], pair_weights)
        out[layer] = direction / np.linalg.norm(direction) * np.linalg.norm(mean_difference)
    return out


@dataclass(frozen=True)
class ProbeChoice:
    """The probe's C, chosen by holding out one group of pairs (an answer style) at a time."""

    c: float
    held_out_auroc: dict[float, float]  # per candidate C: mean AUROC on the held-out groups
    groups: int
    layers: tuple[int, ...]

    def as_metadata(self) -> dict[str, Any]:
        return {
            "criterion": "mean AUROC on each held-out answer style, fit on the others",
            "held_out_auroc": {str(c): round(a, 4) for c, a in self.held_out_auroc.items()},
            "groups": self.groups,
            "layers": list(self.layers),
        }


def choose_probe_c(
    positive: np.ndarray,
    negative: np.ndarray,
    groups: Sequence[str],
    *,
    weights: np.ndarray | None = None,
    candidates: Sequence[float] = PROBE_C_CANDIDATES,
) -> ProbeChoice | None:
    """The candidate C whose probe best ranks the answers of a group it was not fit on.

    Each group (the pairs of one answer style) is held out in turn; the probe is fit on the others
    (with their ``weights``) at a few layers spread over the model's depth, and scored by the AUROC
    of the held-out positives against the held-out negatives. Ties go to the smaller C (the stronger
    regularization). None where fewer than two groups can be held out.
    """
    names = sorted(set(groups))
    if len(names) < 2:
        return None
    group_of = np.asarray(groups)
    pair_weights = np.ones(len(positive)) if weights is None else np.asarray(weights, dtype=np.float64)
    depth = positive.shape[1] - 1
    layers = tuple(sorted({max(1, min(depth - 1, round(depth * f))) for f in PROBE_C_LAYER_FRACTIONS}))
    scores: dict[float, list[float]] = {c: [] for c in candidates}
    for name in names:
        held = group_of == name
        for layer in layers:
            for c in candidates:
                direction = probe_directions(
                    positive[~held][:, [layer]], negative[~held][:, [layer]], c=c, weights=pair_weights[~held]
                )[0]
                scores[c].append(auroc(positive[held, layer] @ direction, negative[held, layer] @ direction))
    mean = {c: float(np.mean(values)) for c, values in scores.items()}
    best = max(candidates, key=lambda c: (round(mean[c], 6), -c))
    return ProbeChoice(best, mean, len(names), layers)


def weighted_mean_difference(positive: np.ndarray, negative: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_i w_i (pos_i - neg_i) / sum_i w_i over the leading axis."""
    difference = positive.astype(np.float64) - negative.astype(np.float64)
    return np.asarray(np.tensordot(weights, difference, axes=1) / weights.sum())


def build_contrastive(
    loaded: LoadedModel,
    trait: TraitDefinition,
    *,
    direction: DirectionKind = "probe",
    batch_size: int = 16,
    seed: int = 0,
    extraction_pairs: Sequence[TraitPair] | None = None,
    held_out_pairs: Sequence[TraitPair] | None = None,
    extra_pairs: Sequence[tuple[str, Sequence[TraitPair]]] = (),
) -> PersonaVector:
    """A vector from ``trait.pairs`` at every layer; layers scored on ``trait.calibration``.

    ``direction``: "probe" (the default, chosen by leave-one-style-out evidence, see
    vectors/README.md) or "mean-difference" (the paper's). ``extra_pairs``: more (name, pairs)
    sources to extract from; each source weighs as much as the trait file's pairs.
    """
    own = list(extraction_pairs if extraction_pairs is not None else trait.pairs)
    held = list(held_out_pairs if held_out_pairs is not None else trait.calibration)
    sources = [("trait file", own), *((name, list(pairs)) for name, pairs in extra_pairs)]
    train = [pair for _, pairs in sources for pair in pairs]
    weights = source_weights([len(pairs) for _, pairs in sources])
    positive, negative = pair_activations(loaded, train, batch_size=batch_size)
    choice = None
    if direction == "probe":
        choice = choose_probe_c(positive, negative, [p.style for p in train], weights=weights)
        c = PROBE_C if choice is None else choice.c
        vectors = probe_directions(positive, negative, c=c, weights=weights).astype(np.float32)
    else:
        vectors = weighted_mean_difference(positive, negative, weights).astype(np.float32)
    metadata: dict[str, Any] = {
        "model": {"name": loaded.spec.name, "identity": loaded.identity},
        "layer_convention": LAYER_CONVENTION,
        "method": "contrastive",
        "direction": direction,
        "probe_c": (PROBE_C if choice is None else choice.c) if direction == "probe" else None,
        "probe_c_choice": None if choice is None else choice.as_metadata(),
        "counts": {"extraction_pairs": len(train), "held_out_pairs": len(held)},
        "sources": [{"name": name, "pairs": len(pairs)} for name, pairs in sources],
        "styles": sorted({p.style for p in train}),
        "system_prompt": "as written in each pair; the chat template's default where none",
        "trait_file_description": trait.description,
        "tool_version": __version__,
    }
    if held:
        held_pos, held_neg = pair_activations(loaded, held, batch_size=batch_size)
        stats = layer_statistics(vectors, held_pos, held_neg, seed=seed)
        metadata["layer_stats"] = stats
        metadata["chosen_layer"] = choose_layer(stats)
        metadata["layer_selection"] = "max Cohen's d of held-out projections over layers 1..L-1"
    return PersonaVector(trait.trait, vectors, metadata)
