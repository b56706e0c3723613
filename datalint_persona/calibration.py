"""Calibrate a vector's thresholds on its trait's held-out pairs, with the base model's own y'.

Sample level: the threshold is the ΔP that at most ``fpr`` of normal answers exceed. Dataset level:
the normal ΔP values are stored so that a threshold for any dataset size can be bootstrapped
(:func:`datalint_persona.stats.clean_dataset_threshold`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona.backends import GenerationSettings
from datalint_persona.extraction import auroc
from datalint_persona.generation import auto_max_new_tokens_for, generate_y_prime
from datalint_persona.scoring import project_responses
from datalint_persona.stats import clean_dataset_threshold, cohens_d, threshold_at_fpr, tpr_at_threshold
from datalint_persona.traits import TraitPair
from datalint_persona.types import Direction
from datalint_persona.vectors import PersonaVector

if TYPE_CHECKING:
    from datalint_persona.models import LoadedModel

LEXICAL_LAYER = 0


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
    dataset_sizes: Sequence[int] = (10, 50, 100, 500, 1000),
    batch_size: int = 16,
    cache_dir: str | None = None,
    backend: str = "transformers",
    seed: int = 0,
) -> dict[str, Any]:
    """Return the sidecar's ``calibration`` block for ``vector`` at ``layer`` (default: its chosen one).

    Figures are also given for the confusable pairs alone, and for the same method at layer 0
    (the lexical baseline: an average of token embeddings).
    """
    chosen = vector.chosen_layer if layer is None else layer
    prompts = [p.prompt for p in pairs]
    max_new = auto_max_new_tokens_for(loaded, [p.negative for p in pairs])
    settings = GenerationSettings(max_new_tokens=max_new, seed=seed)
    generations, _ = generate_y_prime(
        loaded, prompts, settings, backend=backend, cache_dir=cache_dir, batch_size=batch_size
    )
    directions = [
        Direction(vector.trait, chosen, vector.unit(chosen)),
        Direction(vector.trait, LEXICAL_LAYER, vector.unit(LEXICAL_LAYER)),
    ]
    n = len(pairs)
    projections, _ = project_responses(
        loaded,
        [*prompts, *prompts, *prompts],
        [*(p.positive for p in pairs), *(p.negative for p in pairs), *(g.text for g in generations)],
        directions,
        max_tokens=loaded.context_length,
        batch_size=batch_size,
    )
    # ΔP = proj(x, y) - proj(x, y'), per direction (columns: chosen layer, layer 0).
    delta_pos = projections[:n] - projections[2 * n :]
    delta_neg = projections[n : 2 * n] - projections[2 * n :]
    threshold = threshold_at_fpr(delta_neg[:, 0], fpr)
    confusable = np.array([p.confusable is not None for p in pairs])
    lexical_threshold = threshold_at_fpr(delta_neg[:, 1], fpr)
    result: dict[str, Any] = {
        "layer": chosen,
        "fpr": fpr,
        "sample_threshold": threshold,
        "normal_mean": float(delta_neg[:, 0].mean()),
        "normal_std": float(delta_neg[:, 0].std(ddof=1)),
        "normal_delta_p": [float(x) for x in delta_neg[:, 0]],
        "trait_delta_p": [float(x) for x in delta_pos[:, 0]],
        "overall": _figures(delta_pos[:, 0], delta_neg[:, 0], threshold),
        "lexical_overall": _figures(delta_pos[:, 1], delta_neg[:, 1], lexical_threshold),
        "y_prime": {
            "max_new_tokens": settings.max_new_tokens,
            "hit_token_limit": int(sum(g.hit_token_limit for g in generations)),
        },
        "dataset_thresholds": {
            str(size): clean_dataset_threshold(delta_neg[:, 0], size, fpr=fpr, seed=seed)
            for size in dataset_sizes
        },
    }
    if confusable.any():
        result["confusable"] = _figures(delta_pos[confusable, 0], delta_neg[confusable, 0], threshold)
        result["lexical_confusable"] = _figures(
            delta_pos[confusable, 1], delta_neg[confusable, 1], lexical_threshold
        )
    styles = sorted({p.style for p in pairs})
    result["by_style"] = {
        style: _figures(delta_pos[mask, 0], delta_neg[mask, 0], threshold)
        for style in styles
        if (mask := np.array([p.style == style for p in pairs])).sum() >= 2
    }
    return result
