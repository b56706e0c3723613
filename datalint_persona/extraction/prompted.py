"""The paper's prompted extraction: the model's own answers under persona instructions, judged.

For each instruction pair i and extraction question q, the model answers q under the positive and
under the negative system prompt. A judge scores both answers for the trait and for coherence. A pair
is kept when the positive answer scores >= 50, the negative < 50, and both are coherent (>= 50). The
vector at layer l is mean(a_l(positive answers)) - mean(a_l(negative answers)) over the kept pairs,
each activation taken with its own system prompt in context.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona import __version__
from datalint_persona.errors import ConfigError, PersonaLintError
from datalint_persona.extraction.contrastive import (
    choose_layer,
    layer_statistics,
    pair_activations,
    response_activations,
)
from datalint_persona.extraction.judge import Judge, JudgeScore
from datalint_persona.extraction.llm_client import ChatClient
from datalint_persona.model.backends import GenerationSettings
from datalint_persona.model.capture import LAYER_CONVENTION
from datalint_persona.persona.traits import TraitDefinition
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.screening.generation import generate_y_prime
from datalint_persona.types import Message

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel


# Generous: a local server answers concurrent judge requests one after another.
JUDGE_TIMEOUT_S = 300.0

# PromptedOptions fields that `vectors build` takes from options of the same name.
OPTION_NAMES = (
    "max_instructions",
    "max_questions",
    "min_pairs",
    "trait_threshold",
    "coherence_threshold",
    "max_new_tokens",
    "backend",
)


@dataclass(frozen=True)
class PromptedOptions:
    """How many prompts to use, how to generate, and the paper's filter thresholds."""

    max_instructions: int | None = None
    max_questions: int | None = None
    min_pairs: int = 10
    trait_threshold: float = 50.0
    coherence_threshold: float = 50.0
    max_new_tokens: int = 128
    temperature: float = 0.0
    seed: int = 0
    backend: str = "transformers"
    batch_size: int = 16
    cache_dir: str | None = None


@dataclass(frozen=True)
class JudgedPair:
    """One (instruction, question) with both answers and their four scores."""

    instruction: int
    question: str
    prompts: tuple[tuple[Message, ...], tuple[Message, ...]]  # (positive, negative) [system, user]
    answers: tuple[str, str]
    hit_token_limit: tuple[bool, bool]
    trait: tuple[JudgeScore, JudgeScore]
    coherence: tuple[JudgeScore, JudgeScore]


def make_judge(judge_url: str | None, judge_model: str | None, api_key_env: str) -> Judge:
    """The judge for ``--method prompted``, or a ConfigError naming the missing option."""
    missing = [
        name for name, value in (("--judge-url", judge_url), ("--judge-model", judge_model)) if not value
    ]
    if missing or judge_url is None or judge_model is None:
        raise ConfigError(
            f"--method prompted needs {' and '.join(missing)}.",
            fix="pass the judge's OpenAI-compatible base URL and model name, or use --method contrastive.",
        )
    return Judge(ChatClient(judge_url, judge_model, api_key_env=api_key_env, timeout=JUDGE_TIMEOUT_S))


def pair_verdict(pair: JudgedPair, options: PromptedOptions) -> str:
    """'kept', or the first reason the pair is dropped."""
    scores = (*pair.trait, *pair.coherence)
    if any(s.refusal for s in scores):
        return "refused"
    if any(s.value is None for s in scores):
        return "unscored"
    pos_trait, neg_trait = (float(s.value or 0.0) for s in pair.trait)
    if min(float(s.value or 0.0) for s in pair.coherence) < options.coherence_threshold:
        return "incoherent"
    if pos_trait < options.trait_threshold:
        return "positive_below_threshold"
    if neg_trait >= options.trait_threshold:
        return "negative_at_or_above_threshold"
    return "kept"


def generate_and_judge(
    loaded: LoadedModel, trait: TraitDefinition, judge: Judge, options: PromptedOptions
) -> list[JudgedPair]:
    """Generate both answers for every (instruction, question) and judge them."""
    instructions = trait.instructions[: options.max_instructions]
    questions = trait.extraction_questions[: options.max_questions]
    cells = [(i, q) for i in range(len(instructions)) for q in questions]
    prompts: list[tuple[tuple[Message, ...], tuple[Message, ...]]] = [
        (
            (Message("system", instructions[i][0]), Message("user", q)),
            (Message("system", instructions[i][1]), Message("user", q)),
        )
        for i, q in cells
    ]
    settings = GenerationSettings(
        max_new_tokens=options.max_new_tokens, temperature=options.temperature, seed=options.seed
    )
    # One call over every prompt: positives then negatives, batched and cached by the engine's path.
    flat = [p[0] for p in prompts] + [p[1] for p in prompts]
    generations, _ = generate_y_prime(
        loaded,
        flat,
        settings,
        backend=options.backend,
        cache_dir=options.cache_dir,
        batch_size=options.batch_size,
    )
    answers = [g.text for g in generations]
    items = [(q, a) for q, a in zip([q for _, q in cells] * 2, answers, strict=True)]
    trait_scores = judge.score_many(trait.trait_rubric, items)
    coherence_scores = judge.score_many(trait.coherence_rubric, items)
    n = len(cells)
    return [
        JudgedPair(
            instruction=i,
            question=q,
            prompts=prompts[k],
            answers=(answers[k], answers[n + k]),
            hit_token_limit=(generations[k].hit_token_limit, generations[n + k].hit_token_limit),
            trait=(trait_scores[k], trait_scores[n + k]),
            coherence=(coherence_scores[k], coherence_scores[n + k]),
        )
        for k, (i, q) in enumerate(cells)
    ]


def _counts(judged: Sequence[JudgedPair], verdicts: list[str]) -> dict[str, int]:
    scores = [s for p in judged for s in (*p.trait, *p.coherence)]
    return {
        "pairs": len(judged),
        "generated": 2 * len(judged),
        "judged": len(scores),
        "refused": sum(s.refusal for s in scores),
        "unscored": sum(s.value is None and not s.refusal for s in scores),
        "kept": verdicts.count("kept"),
        "hit_token_limit": sum(sum(p.hit_token_limit) for p in judged),
    }


def build_prompted(
    loaded: LoadedModel, trait: TraitDefinition, judge: Judge, options: PromptedOptions
) -> PersonaVector:
    """The paper's vector from judged model answers; refuses when fewer than ``min_pairs`` survive."""
    judged = generate_and_judge(loaded, trait, judge, options)
    judge_model = {
        "url": getattr(judge.endpoint, "url", None),
        "model": getattr(judge.endpoint, "model", None),
    }
    return vector_from_judged(loaded, trait, judged, options, judge_model=judge_model)


def _check_kept(
    trait: TraitDefinition, counts: dict[str, int], dropped: Counter[str], options: PromptedOptions
) -> None:
    """Refuse when fewer than ``min_pairs`` pairs survived the judge, saying why the rest fell."""
    if counts["kept"] >= options.min_pairs:
        return
    reasons = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in dropped.most_common())
    raise PersonaLintError(
        f"vectors build --method prompted, trait {trait.trait}: only {counts['kept']} of "
        f"{counts['pairs']} pairs survived the judge (needed --min-pairs {options.min_pairs}; "
        f"kept: positive >= {options.trait_threshold:g}, negative < {options.trait_threshold:g}, "
        f"both coherence >= {options.coherence_threshold:g}; dropped: {reasons or 'none'}; "
        f"{counts['generated']} answers generated, {counts['judged']} scores, "
        f"{counts['refused']} refusals, {counts['unscored']} without a number).",
        fix="the model does not follow persona instructions, or the judge can't score them; "
        "use --method contrastive, a model that follows system prompts, or a stronger judge.",
    )


def vector_from_judged(
    loaded: LoadedModel,
    trait: TraitDefinition,
    judged: Sequence[JudgedPair],
    options: PromptedOptions,
    *,
    judge_model: dict[str, str | None],
) -> PersonaVector:
    """Filter judged pairs, then take the mean response-activation difference of the kept ones."""
    verdicts = [pair_verdict(p, options) for p in judged]
    counts = _counts(judged, verdicts)
    dropped = Counter(v for v in verdicts if v != "kept")
    _check_kept(trait, counts, dropped, options)
    kept = [p for p, v in zip(judged, verdicts, strict=True) if v == "kept"]
    activations = response_activations(
        loaded,
        [*(p.prompts[0] for p in kept), *(p.prompts[1] for p in kept)],
        [*(p.answers[0] for p in kept), *(p.answers[1] for p in kept)],
        batch_size=options.batch_size,
    )
    # (2k, L + 1, hidden) -> (L + 1, hidden)
    positive, negative = activations[: len(kept)], activations[len(kept) :]
    vectors = (positive.astype(np.float64).mean(0) - negative.astype(np.float64).mean(0)).astype(np.float32)
    methods = Counter(s.method for p in judged for s in (*p.trait, *p.coherence))
    metadata: dict[str, Any] = {
        "model": {"name": loaded.spec.name, "identity": loaded.identity},
        "layer_convention": LAYER_CONVENTION,
        "method": "prompted",
        "counts": {**counts, "dropped": dict(dropped), "held_out_pairs": len(trait.calibration)},
        "judge": {
            **judge_model,
            "score_methods": dict(methods),
            "thresholds": {"trait": options.trait_threshold, "coherence": options.coherence_threshold},
        },
        "generation": {
            **asdict(GenerationSettings(options.max_new_tokens, options.temperature, seed=options.seed)),
            "backend": options.backend,
        },
        "instructions_used": len({p.instruction for p in judged}),
        "questions_used": len({p.question for p in judged}),
        "system_prompt": "the trait's positive / negative instruction for each answer",
        "trait_file_description": trait.description,
        "tool_version": __version__,
    }
    if trait.calibration:
        held_pos, held_neg = pair_activations(loaded, trait.calibration, batch_size=options.batch_size)
        stats = layer_statistics(vectors, held_pos, held_neg, seed=options.seed)
        metadata["layer_stats"] = stats
        metadata["chosen_layer"] = choose_layer(stats)
        metadata["layer_selection"] = "max Cohen's d of held-out projections over layers 1..L-1"
    return PersonaVector(trait.trait, vectors, metadata)
