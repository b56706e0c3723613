"""Calibrate a vector's verdicts on its trait's held-out pairs and on clean data, with the base
model's own y' (generated with the fixed budget the sidecar records, as screening does).

- **The clean null**: a Student t fitted to the ΔP of clean answers: the trait file's normal
  answers and, where given, clean datasets of other styles and authors. Sample p-values come from
  it (:mod:`datalint_persona.verdicts.decide`).
- **The gap**: mean ΔP of trait answers minus that of normal answers, the unit of a dataset's effect.
- **The margin**: the effect a dataset must be shown to exceed, set from the clean sources' own
  effects so that clean data of every calibration style passes with room.
- **The reference**: how much of the model's own answer y′ ΔP subtracts, fitted on the clean
  answers (:mod:`datalint_persona.screening.reference`); every figure above is of that ΔP.

The null, the gap and the margin are fitted by :mod:`datalint_persona.extraction.verdict_calibration`.

The ΔP that at most ``fpr`` of normal answers exceed is kept as a reference figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona.errors import ConfigError
from datalint_persona.extraction.verdict_calibration import verdict_calibration
from datalint_persona.model.backends import GenerationSettings
from datalint_persona.persona.traits import TraitPair
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.screening.generation import DEFAULT_MAX_NEW_TOKENS, generate_y_prime
from datalint_persona.screening.reference import Reference, fit_reference
from datalint_persona.screening.scoring import project_responses
from datalint_persona.stats import auroc, cohens_d, threshold_at_fpr, tpr_at_threshold
from datalint_persona.types import Direction, Generation, Sample

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel

LEXICAL_LAYER = 0


@dataclass(frozen=True)
class CleanProjections:
    """Projections of clean samples for several vectors, at each vector's layer: of the answer
    (``answers[trait]``) and of the model's own answer to the same prompt (``own_answers[trait]``),
    with each sample's source (a file name) in ``sources`` and its answer's length in characters
    in ``lengths``."""

    sources: tuple[str, ...]
    answers: dict[str, np.ndarray]
    own_answers: dict[str, np.ndarray]
    lengths: np.ndarray | None = None


def clean_projections(
    loaded: LoadedModel,
    vectors: Sequence[PersonaVector],
    samples: Sequence[Sample],
    *,
    batch_size: int = 16,
    cache_dir: str | None = None,
    backend: str = "transformers",
    seed: int = 0,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> CleanProjections:
    """proj(y) and proj(y') of every clean sample for every vector, at its chosen layer, in one
    generation and one forward pass for all of them (screening's own y' settings and scoring)."""
    settings = GenerationSettings(max_new_tokens=max_new_tokens, seed=seed)
    prompts = [s.prompt for s in samples]
    generations, _ = generate_y_prime(
        loaded, prompts, settings, backend=backend, cache_dir=cache_dir, batch_size=batch_size
    )
    directions = [Direction(v.trait, v.chosen_layer, v.unit(v.chosen_layer)) for v in vectors]
    projections, _ = project_responses(
        loaded,
        [*prompts, *prompts],
        [*(s.response for s in samples), *(g.text for g in generations)],
        directions,
        max_tokens=loaded.context_length,
        batch_size=batch_size,
    )
    n = len(samples)
    return CleanProjections(
        tuple(Path(s.source).name for s in samples),
        {v.trait: projections[:n, column] for column, v in enumerate(vectors)},
        {v.trait: projections[n:, column] for column, v in enumerate(vectors)},
        np.array([len(s.response) for s in samples], dtype=np.float64),
    )


def _figures(pos: np.ndarray, neg: np.ndarray, threshold: float) -> dict[str, float]:
    return {
        "auroc": auroc(pos, neg),
        "cohens_d": cohens_d(pos, neg),
        "tpr_at_threshold": tpr_at_threshold(pos, threshold),
        "fpr_at_threshold": float((neg > threshold).mean()),
        "n_pairs": int(len(pos)),
    }


def calibrate_vector(
    loaded: LoadedModel,
    vector: PersonaVector,
    pairs: Sequence[TraitPair],
    *,
    layer: int | None = None,
    fpr: float = 0.05,
    batch_size: int = 16,
    cache_dir: str | None = None,
    backend: str = "transformers",
    seed: int = 0,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    clean: CleanProjections | None = None,
    reference_weight: float | None = None,
) -> dict[str, Any]:
    """Return the sidecar's ``calibration`` block for ``vector`` at ``layer`` (default: its chosen one).

    ``clean`` (from :func:`clean_projections`, at the same layer) adds clean answers of other
    sources to the null, the margin and the reference fit. ``reference_weight`` fixes the weight of
    y′ in the reference (1: the paper's ΔP) instead of fitting it. Figures are also given for the
    confusable pairs alone, and for the paper's ΔP at layer 0 (the lexical baseline: an average of
    token embeddings).
    """
    chosen = vector.chosen_layer if layer is None else layer
    settings = GenerationSettings(max_new_tokens=max_new_tokens, seed=seed)
    projections, generations = _pair_projections(
        loaded, vector, pairs, chosen, settings, batch_size=batch_size, cache_dir=cache_dir, backend=backend
    )
    n = len(pairs)
    # Columns: chosen layer, layer 0. The layer-0 baseline keeps the paper's ΔP, proj(y) - proj(y').
    own = projections[2 * n :]
    lexical_pos, lexical_neg = projections[:n, 1] - own[:, 1], projections[n : 2 * n, 1] - own[:, 1]
    reference = _reference(vector.trait, projections[n : 2 * n, 0], own[:, 0], clean, reference_weight)
    delta_pos = reference.delta_p(projections[:n, 0], own[:, 0])
    delta_neg = reference.delta_p(projections[n : 2 * n, 0], own[:, 0])
    threshold = threshold_at_fpr(delta_neg, fpr)
    lexical_threshold = threshold_at_fpr(lexical_neg, fpr)
    result: dict[str, Any] = {
        "layer": chosen,
        "fpr": fpr,
        "sample_threshold": threshold,
        "reference": {"weight": reference.weight, "own_answer_mean": reference.own_answer_mean},
        "normal_mean": float(delta_neg.mean()),
        "normal_std": float(delta_neg.std(ddof=1)),
        "normal_delta_p": [float(x) for x in delta_neg],
        "trait_delta_p": [float(x) for x in delta_pos],
        "overall": _figures(delta_pos, delta_neg, threshold),
        "lexical_overall": _figures(lexical_pos, lexical_neg, lexical_threshold),
        "y_prime": _y_prime_figures(settings, generations),
    }
    normal_lengths = np.array([len(p.negative) for p in pairs], dtype=np.float64)
    result.update(
        verdict_calibration(vector.trait, delta_pos, delta_neg, own[:, 0], reference, clean, normal_lengths)
    )
    result.update(
        _subset_figures(
            pairs, (delta_pos, delta_neg, threshold), (lexical_pos, lexical_neg, lexical_threshold)
        )
    )
    return result


def _pair_projections(
    loaded: LoadedModel,
    vector: PersonaVector,
    pairs: Sequence[TraitPair],
    layer: int,
    settings: GenerationSettings,
    *,
    batch_size: int,
    cache_dir: str | None,
    backend: str,
) -> tuple[np.ndarray, list[Generation]]:
    """Projections of the pairs' trait answers, normal answers and the model's own answers y'
    (rows in that order) on ``vector`` at ``layer`` and at layer 0 (the two columns), and the y'."""
    prompts = [p.prompt for p in pairs]
    generations, _ = generate_y_prime(
        loaded, prompts, settings, backend=backend, cache_dir=cache_dir, batch_size=batch_size
    )
    directions = [
        Direction(vector.trait, layer, vector.unit(layer)),
        Direction(vector.trait, LEXICAL_LAYER, vector.unit(LEXICAL_LAYER)),
    ]
    projections, _ = project_responses(
        loaded,
        [*prompts, *prompts, *prompts],
        [*(p.positive for p in pairs), *(p.negative for p in pairs), *(g.text for g in generations)],
        directions,
        max_tokens=loaded.context_length,
        batch_size=batch_size,
    )
    return projections, generations


def _y_prime_figures(settings: GenerationSettings, generations: Sequence[Generation]) -> dict[str, Any]:
    """How the y' of the calibration were generated, and how many reached the token budget."""
    return {
        "max_new_tokens": settings.max_new_tokens,
        "temperature": settings.temperature,
        "hit_token_limit": int(sum(g.hit_token_limit for g in generations)),
    }


# (trait ΔP, normal ΔP, threshold) of one score
Scored = tuple[np.ndarray, np.ndarray, float]


def _subset_figures(pairs: Sequence[TraitPair], delta: Scored, lexical: Scored) -> dict[str, Any]:
    """The figures on the confusable pairs alone (ΔP and lexical), and per answer style (ΔP)."""
    delta_pos, delta_neg, threshold = delta
    out: dict[str, Any] = {}
    confusable = np.array([p.confusable is not None for p in pairs])
    if confusable.any():
        out["confusable"] = _figures(delta_pos[confusable], delta_neg[confusable], threshold)
        out["lexical_confusable"] = _figures(lexical[0][confusable], lexical[1][confusable], lexical[2])
    styles = sorted({p.style for p in pairs})
    out["by_style"] = {
        style: _figures(delta_pos[mask], delta_neg[mask], threshold)
        for style in styles
        if (mask := np.array([p.style == style for p in pairs])).sum() >= 2
    }
    return out


def _reference(
    trait: str,
    normal_projection: np.ndarray,
    own_projection: np.ndarray,
    clean: CleanProjections | None,
    weight: float | None,
) -> Reference:
    """The reference fitted on the trait file's normal answers and the clean answers (or with a
    fixed ``weight``); its mean is over the own answers to every one of their prompts."""
    answers, own = [normal_projection], [own_projection]
    if clean is not None and trait in clean.answers:
        answers.append(clean.answers[trait])
        own.append(clean.own_answers[trait])
    fitted = fit_reference(np.concatenate(answers), np.concatenate(own))
    if weight is None:
        return fitted
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(
            f"reference weight {weight} is outside 0..1.",
            fix="pass a weight between 0 and 1 (1: the paper's ΔP).",
        )
    return Reference(float(weight), fitted.own_answer_mean)
