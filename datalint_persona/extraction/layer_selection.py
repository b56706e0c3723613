"""The paper's steering-based layer selection: steer with the vector at each candidate layer and
keep the layer where the judge sees the most trait expression in the answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona.errors import PersonaLintError
from datalint_persona.model.backends import GenerationSettings
from datalint_persona.model.chat import render_prompt
from datalint_persona.model.steering import Positions, steering
from datalint_persona.persona.traits import TraitDefinition
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.types import Message

if TYPE_CHECKING:
    from datalint_persona.extraction.judge import Judge
    from datalint_persona.model.loading import LoadedModel


def steered_answers(
    loaded: LoadedModel,
    questions: Sequence[str],
    vector: PersonaVector,
    layer: int,
    alpha: float,
    settings: GenerationSettings,
    *,
    batch_size: int = 16,
    positions: Positions = "all",
) -> list[str]:
    """Greedy answers to ``questions`` with h_layer += alpha * v_layer (the raw vector, as in the paper),
    at the token ``positions`` of :func:`datalint_persona.model.steering.steering`."""
    import torch

    from datalint_persona.model.backends.transformers_backend import TransformersBackend

    prompts = [render_prompt(loaded.tokenizer, (Message("user", q),)) for q in questions]
    answers = [""] * len(prompts)
    direction = torch.tensor(vector.vectors[layer], dtype=torch.float32)
    with steering(loaded.model, layer, direction, alpha, positions=positions):
        for indices, generations in TransformersBackend(loaded).generate(
            prompts, settings, batch_size=batch_size
        ):
            for index, generation in zip(indices, generations, strict=True):
                answers[index] = generation.text
    return answers


def choose_steering_layer(per_layer: Sequence[dict[str, Any]]) -> int:
    """The layer with the highest mean judged trait score (the lower layer on a tie).

    >>> choose_steering_layer([{"layer": 4, "trait_mean": 20.0}, {"layer": 8, "trait_mean": 70.0}])
    8
    """
    scored = [row for row in per_layer if row["trait_mean"] is not None]
    if not scored:
        raise PersonaLintError(
            "The judge gave no trait score for any steered answer, so no layer can be chosen by steering.",
            fix="use a judge model that answers with a number 0-100, or --select-layer effect-size.",
        )
    return int(max(scored, key=lambda row: (row["trait_mean"], -row["layer"]))["layer"])


def steering_layer_scores(
    loaded: LoadedModel,
    vector: PersonaVector,
    trait: TraitDefinition,
    judge: Judge,
    layers: Sequence[int],
    *,
    alpha: float = 2.0,
    max_questions: int | None = None,
    max_new_tokens: int = 64,
    batch_size: int = 16,
) -> list[dict[str, Any]]:
    """Per candidate layer: mean judged trait and coherence of steered answers to the eval questions."""
    questions = list(trait.evaluation_questions[:max_questions])
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    rows = []
    for layer in layers:
        answers = steered_answers(loaded, questions, vector, layer, alpha, settings, batch_size=batch_size)
        items = list(zip(questions, answers, strict=True))
        trait_scores = [s.value for s in judge.score_many(trait.trait_rubric, items) if s.value is not None]
        coherence = [s.value for s in judge.score_many(trait.coherence_rubric, items) if s.value is not None]
        rows.append(
            {
                "layer": layer,
                "alpha": alpha,
                "n_answers": len(answers),
                "n_trait_scores": len(trait_scores),
                "trait_mean": float(np.mean(trait_scores)) if trait_scores else None,
                "coherence_mean": float(np.mean(coherence)) if coherence else None,
            }
        )
    return rows
