"""``persona-lint monitor``: does the last prompt token's projection onto v predict the answer's trait?

As in the paper (section 4), the trait's evaluation questions are asked under system prompts that
encourage the trait more or less. Here they come from the trait file's instruction pairs: each
negative instruction (discourages), no system prompt (the template's default), and each positive
instruction (encourages). For every (system prompt, question) the last prompt token's activation at
layer l is projected onto v̂ *before* the answer exists; the answer is then generated greedily and
its trait expression measured: the judge's 0-100 score when a judge is given, otherwise the
answer's own trait projection (mean response-token activation · v̂). The report gives Pearson r
over all prompts and over the per-system-prompt means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona.analysis.shift import last_prompt_activations
from datalint_persona.model.backends import GenerationSettings
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.screening.generation import generate_y_prime
from datalint_persona.screening.scoring import project_responses
from datalint_persona.types import Direction, Message

if TYPE_CHECKING:
    from datalint_persona.extraction.judge import Judge
    from datalint_persona.model.loading import LoadedModel
    from datalint_persona.persona.traits import TraitDefinition


def graded_system_prompts(trait: TraitDefinition) -> list[tuple[str, str | None]]:
    """(label, system prompt or None): discouraging, default, encouraging.

    >>> # [("negative-1", "You are helpful..."), ..., ("default", None), ("positive-1", "You are evil..."), ...]
    """
    negative = [(f"negative-{i + 1}", pair[1]) for i, pair in enumerate(trait.instructions)]
    positive = [(f"positive-{i + 1}", pair[0]) for i, pair in enumerate(trait.instructions)]
    return [*negative, ("default", None), *positive]


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson r, or None with fewer than 3 points or a constant side."""
    if len(x) < 3 or float(np.std(x)) == 0.0 or float(np.std(y)) == 0.0:
        return None
    return float(np.corrcoef(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))[0, 1])


def monitor(
    loaded: LoadedModel,
    vector: PersonaVector,
    layer: int,
    trait: TraitDefinition,
    *,
    max_questions: int | None = None,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    judge: Judge | None = None,
) -> dict[str, Any]:
    """Rows of (system prompt, question, last-prompt projection, answer, expression) and the correlations."""
    questions = list(trait.evaluation_questions[:max_questions])
    systems = graded_system_prompts(trait)
    cells = [(label, system, q) for label, system in systems for q in questions]
    prompts: list[tuple[Message, ...]] = [
        ((Message("system", system), Message("user", q)) if system is not None else (Message("user", q),))
        for _label, system, q in cells
    ]
    unit = vector.unit(layer)
    prompt_projection = last_prompt_activations(loaded, prompts, layer, batch_size=batch_size) @ unit
    generations, _ = generate_y_prime(
        loaded,
        prompts,
        GenerationSettings(max_new_tokens=max_new_tokens),
        cache_dir=None,
        batch_size=batch_size,
    )
    answers = [g.text for g in generations]
    expression, measure = _expression(
        loaded, vector, layer, trait, cells, prompts, answers, judge, batch_size
    )
    rows: list[dict[str, Any]] = [
        {
            "system_prompt": label,
            "question": q,
            "prompt_projection": float(prompt_projection[i]),
            "response": answers[i],
            "expression": expression[i],
        }
        for i, (label, _system, q) in enumerate(cells)
    ]
    scored = [r for r in rows if r["expression"] is not None]
    by_system = _by_system_prompt(systems, scored)
    return {
        "trait": vector.trait,
        "layer": layer,
        "expression_measure": measure,
        "n_prompts": len(rows),
        "n_scored": len(scored),
        "pearson_r": pearson([r["prompt_projection"] for r in scored], [r["expression"] for r in scored]),
        "pearson_r_system_prompt_means": pearson(
            [s["mean_prompt_projection"] for s in by_system], [s["mean_expression"] for s in by_system]
        ),
        "by_system_prompt": by_system,
        "rows": rows,
    }


def _expression(
    loaded: LoadedModel,
    vector: PersonaVector,
    layer: int,
    trait: TraitDefinition,
    cells: Sequence[tuple[str, str | None, str]],
    prompts: Sequence[tuple[Message, ...]],
    answers: Sequence[str],
    judge: Judge | None,
    batch_size: int,
) -> tuple[list[float | None], str]:
    """Each answer's trait expression, and what it measures: the judge's score, else its projection."""
    if judge is not None:
        items = [(q, a) for (_l, _s, q), a in zip(cells, answers, strict=True)]
        return [s.value for s in judge.score_many(trait.trait_rubric, items)], "judge trait score (0-100)"
    direction = Direction(vector.trait, layer, vector.unit(layer))
    projected, _ = project_responses(
        loaded, prompts, answers, [direction], max_tokens=loaded.context_length, batch_size=batch_size
    )
    measure = "response trait projection (mean response-token activation · unit vector; no judge given)"
    return [float(v) for v in projected[:, 0]], measure


def _by_system_prompt(
    systems: Sequence[tuple[str, str | None]], scored: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per system prompt with scored answers: its text, mean prompt projection and mean expression."""
    by_system: list[dict[str, Any]] = []
    for label, system in systems:
        mine = [r for r in scored if r["system_prompt"] == label]
        if mine:
            by_system.append(
                {
                    "system_prompt": label,
                    "text": system,
                    "mean_prompt_projection": float(np.mean([r["prompt_projection"] for r in mine])),
                    "mean_expression": float(np.mean([r["expression"] for r in mine])),
                    "n": len(mine),
                }
            )
    return by_system
