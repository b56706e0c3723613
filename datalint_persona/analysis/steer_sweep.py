"""``persona-lint steer``: generate with h_l <- h_l + alpha * v_l for several alphas and record, per answer,
the trait projection of the generated response (and the judge's trait and coherence scores).

The projection is read with the *unsteered* model (mean response-token activation at layer l · v̂,
the screening engine's :func:`~datalint_persona.screening.scoring.project_responses`), so it measures what the
text expresses rather than echoing the push the steering added.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona.extraction.layer_selection import steered_answers
from datalint_persona.model.backends import GenerationSettings
from datalint_persona.model.steering import Positions
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.screening.scoring import project_responses
from datalint_persona.types import Direction, Message

if TYPE_CHECKING:
    from datalint_persona.extraction.judge import Judge
    from datalint_persona.model.loading import LoadedModel
    from datalint_persona.persona.traits import TraitDefinition

PROJECTION_NOTE = "mean response-token activation at the layer, from the unsteered model, · unit vector"


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def steer_sweep(
    loaded: LoadedModel,
    vector: PersonaVector,
    layer: int,
    questions: Sequence[str],
    alphas: Sequence[float],
    *,
    positions: Positions = "all",
    max_new_tokens: int = 64,
    batch_size: int = 16,
    judge: Judge | None = None,
    trait: TraitDefinition | None = None,
) -> dict[str, Any]:
    """One row per alpha with every answer, its projection and (with a judge) its scores.

    >>> # steer_sweep(loaded, vector, 15, ["How do I bake bread?"], [-4.0, 0.0, 4.0])["sweep"][1]["outputs"]
    """
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    direction = Direction(vector.trait, layer, vector.unit(layer))
    prompts = [(Message("user", q),) for q in questions]
    sweep = []
    for alpha in alphas:
        answers = steered_answers(
            loaded, questions, vector, layer, alpha, settings, batch_size=batch_size, positions=positions
        )
        sweep.append(
            _alpha_row(loaded, alpha, questions, prompts, answers, direction, judge, trait, batch_size)
        )
    return {
        "trait": vector.trait,
        "layer": layer,
        "positions": positions,
        "steering": "h_l += alpha * v_l, v_l the raw persona vector",
        "vector_norm": float(np.linalg.norm(vector.vectors[layer])),
        "max_new_tokens": max_new_tokens,
        "projection": PROJECTION_NOTE,
        "judged": judge is not None,
        "sweep": sweep,
    }


def _alpha_row(
    loaded: LoadedModel,
    alpha: float,
    questions: Sequence[str],
    prompts: Sequence[tuple[Message, ...]],
    answers: Sequence[str],
    direction: Direction,
    judge: Judge | None,
    trait: TraitDefinition | None,
    batch_size: int,
) -> dict[str, Any]:
    """One alpha's answers with their unsteered projections and (with a judge) scores, and the means."""
    projections, _ = project_responses(
        loaded, prompts, answers, [direction], max_tokens=loaded.context_length, batch_size=batch_size
    )
    trait_scores: list[float | None] = [None] * len(answers)
    coherence: list[float | None] = [None] * len(answers)
    if judge is not None and trait is not None:
        items = list(zip(questions, answers, strict=True))
        trait_scores = [s.value for s in judge.score_many(trait.trait_rubric, items)]
        coherence = [s.value for s in judge.score_many(trait.coherence_rubric, items)]
    outputs = [
        {
            "question": question,
            "response": answer,
            "projection": float(projections[i, 0]),
            "trait_score": trait_scores[i],
            "coherence": coherence[i],
        }
        for i, (question, answer) in enumerate(zip(questions, answers, strict=True))
    ]
    return {
        "alpha": alpha,
        "mean_projection": float(projections[:, 0].mean()),
        "mean_trait_score": _mean(trait_scores),
        "mean_coherence": _mean(coherence),
        "outputs": outputs,
    }
