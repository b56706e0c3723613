"""What a screening run resolves once, before its first chunk: the rules of its vectors, their
directions, and the y' and token budgets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from datalint_persona.errors import ConfigError, PersonaLintError
from datalint_persona.screening.sample_budget import sample_token_budget
from datalint_persona.settings import ScreenOptions
from datalint_persona.types import Direction, RuleInfo

if TYPE_CHECKING:
    from datalint_persona.model.backends import GenerationSettings
    from datalint_persona.model.loading import ModelSpec
    from datalint_persona.persona.vectors import PersonaVector
    from datalint_persona.screening.generation import CalibratedGeneration
    from datalint_persona.screening.model_facts import ModelFacts

__all__ = ["RunPlan", "plan_run", "prompt_budget"]


@dataclass(frozen=True)
class RunPlan:
    """What a run resolves once, before its first chunk: rules, directions and token budgets."""

    options: ScreenOptions
    vectors: tuple[PersonaVector, ...]
    all_rules: tuple[RuleInfo, ...]  # disabled rules too: the report lists every rule
    rules: tuple[RuleInfo, ...]  # the enabled ones; column j of the projections is rules[j]
    directions: tuple[Direction, ...]
    max_tokens: int  # the x + y cut: --max-tokens and --max-sample-tokens, whichever is less
    generation: GenerationSettings  # its max_new_tokens is the run's y' budget
    calibrated: CalibratedGeneration
    prompt_budget: int  # tokens a prompt keeps beside y' (see prompt_budget)
    generation_budget: int  # tokens a prompt keeps for generation when scoring cannot keep it whole


def plan_run(
    opts: ScreenOptions, spec: ModelSpec, vectors: Sequence[PersonaVector], model: ModelFacts
) -> RunPlan:
    """Check the vectors against the model, resolve their rules, and fix the y' and token budgets.

    It needs only the model's :class:`~datalint_persona.screening.model_facts.ModelFacts`, which a
    fully cached run has without loading the model.
    """
    from datalint_persona.model.backends import GenerationSettings
    from datalint_persona.screening.generation import calibrated_generation
    from datalint_persona.verdicts.rules import default_rule_for, resolve_rule, shipped_rules

    defaults = shipped_rules()
    all_rules: list[RuleInfo] = []
    for vector in vectors:
        vector.check_model(model.identity, model.num_layers, model.hidden_size, spec.name)
        default = defaults.get(vector.trait) or default_rule_for(vector.trait)
        all_rules.append(resolve_rule(default, vector, opts.rule_overrides.get(vector.trait, {})))
    rules = tuple(r for r in all_rules if r.enabled)
    if not rules:
        raise PersonaLintError("Every rule is disabled.", fix="enable at least one rule in the config.")
    by_trait = {v.trait: v for v in vectors}
    max_tokens = min(opts.max_tokens or model.context_length, sample_token_budget(opts, model.context_length))
    # One y' policy for calibration and screening: a sample's ΔP never depends on the rest of the run.
    calibrated = calibrated_generation(vectors)
    max_new = opts.max_new_tokens or calibrated.max_new_tokens
    return RunPlan(
        options=opts,
        vectors=tuple(vectors),
        all_rules=tuple(all_rules),
        rules=rules,
        directions=tuple(Direction(r.trait, r.layer, by_trait[r.trait].unit(r.layer)) for r in rules),
        max_tokens=max_tokens,
        generation=GenerationSettings(max_new_tokens=max_new, temperature=opts.temperature, seed=opts.seed),
        calibrated=calibrated,
        # One cut for generation and scoring: a long prompt loses its oldest tokens so that it and y'
        # fit, and y' is scored under the very prompt it was generated from.
        prompt_budget=prompt_budget(max_tokens, model.context_length, max_new),
        generation_budget=model.context_length - max_new,
    )


def prompt_budget(max_tokens: int, context_length: int, max_new_tokens: int) -> int:
    """Tokens a rendered prompt may have: generation needs room for ``max_new_tokens`` in the
    model's context, and scoring keeps a prompt whole only below the ``max_tokens`` cut (the
    answers' tails are cut first there)."""
    budget = min(context_length, max_tokens) - max_new_tokens
    if budget < 1:  # y' could not fit whole beside any prompt: keep the prompt whole for scoring
        budget = min(context_length - max_new_tokens, max_tokens - 1)
    if budget < 1:
        raise ConfigError(
            f"--max-new-tokens {max_new_tokens} leaves no room for a prompt within the model's "
            f"context of {context_length} tokens.",
            fix="lower --max-new-tokens.",
        )
    return budget
