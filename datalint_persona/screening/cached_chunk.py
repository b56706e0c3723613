"""A chunk scored from the caches alone: no model, no tokenizer.

A chunk whose prepared prompts, y' and projections are all cached has scores that are fully
determined by the cache: the prompts' keys come from the model's facts (:mod:`.model_facts`), the
y' keys from the cached rendered prompts, and the projection keys from the cut prompts and the
cached y'. :func:`score_from_caches` looks them all up; if one is missing it adds nothing, and the
engine loads the model and scores the chunk as a first run does (reusing what is cached). A
cached chunk adds to the run's counts exactly what the loaded path adds when everything hits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from datalint_persona.screening.answer_cache import GenerationCache, generation_key
from datalint_persona.screening.model_facts import ModelFacts
from datalint_persona.screening.projection_cache import ProjectionCache, pair_key, pair_scope
from datalint_persona.screening.prompt_cache import PreparedPrompt, PromptCache, prompt_key
from datalint_persona.screening.result import Scored
from datalint_persona.screening.run_plan import RunPlan
from datalint_persona.screening.scoring import sample_score
from datalint_persona.types import Message, Sample

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

ProgressFactory = Callable[[str, int], Callable[[str, int, int], None] | None]

__all__ = ["RunCaches", "remember_prompts", "score_from_caches"]


@dataclass
class RunCaches:
    """The caches a run keeps open over all its chunks (all disabled without a cache folder)."""

    prompts: PromptCache
    generations: GenerationCache  # read here only; the loaded path opens its own per chunk
    projections: ProjectionCache

    @classmethod
    def open(cls, cache_dir: str | None, scope: str) -> RunCaches:
        """The caches in ``cache_dir``; ``scope`` is the model's cache scope (see ModelFacts)."""
        return cls(
            prompts=PromptCache(cache_dir),
            generations=GenerationCache(cache_dir),
            projections=ProjectionCache(cache_dir, scope=scope if cache_dir is not None else ""),
        )

    @property
    def warnings(self) -> list[str]:
        return [*self.prompts.warnings, *self.generations.warnings]

    def close(self) -> None:
        self.prompts.close()
        self.generations.close()
        self.projections.close()


def prompt_keys(plan: RunPlan, facts: ModelFacts, samples: Sequence[Sample]) -> list[str]:
    return [
        prompt_key(facts.cache_scope, plan.prompt_budget, plan.generation_budget, s.prompt) for s in samples
    ]


def remember_prompts(
    caches: RunCaches,
    plan: RunPlan,
    facts: ModelFacts,
    tokenizer: PreTrainedTokenizerBase,
    samples: Sequence[Sample],
    fitted: Sequence[tuple[tuple[Message, ...], bool]],
) -> None:
    """Store the chunk's prompts as the loaded path prepared them, for runs that find all else cached."""
    from datalint_persona.model.chat import render_prompt

    if not caches.prompts.enabled:
        return
    entries = {
        key: PreparedPrompt(prompt, cut, render_prompt(tokenizer, prompt))
        for key, (prompt, cut) in zip(prompt_keys(plan, facts, samples), fitted, strict=True)
    }
    caches.prompts.put_many(entries)


def score_from_caches(
    chunk: Sequence[tuple[int, Sample]],
    plan: RunPlan,
    facts: ModelFacts,
    caches: RunCaches,
    scored: Scored,
    progress: ProgressFactory,
) -> bool:
    """Score the chunk from the caches and add it to ``scored``; False, with nothing added, when
    anything it needs is not cached.

    ``progress(stage, size)`` gives the chunk's report for a stage, as the run's progress does.
    """
    samples = [sample for _, sample in chunk]
    keys = prompt_keys(plan, facts, samples)
    prompts = caches.prompts.get_many(keys)
    if len(prompts) < len(set(keys)):
        return False
    prepared = [prompts[key] for key in keys]
    opts = plan.options
    settings = plan.generation.as_dict()
    y_prime_keys = [generation_key(facts.cache_scope, opts.backend, p.rendered, settings) for p in prepared]
    generations = caches.generations.get_many(dict.fromkeys(y_prime_keys))
    if len(generations) < len(set(y_prime_keys)):
        return False
    y_primes = [generations[key] for key in y_prime_keys]
    scope = pair_scope(facts.identity, facts.chat_template_sha256)
    pairs = [
        *(
            pair_key(scope, plan.max_tokens, p.messages, s.response)
            for p, s in zip(prepared, samples, strict=True)
        ),
        *(
            pair_key(scope, plan.max_tokens, p.messages, g.text)
            for p, g in zip(prepared, y_primes, strict=True)
        ),
    ]
    projected = caches.projections.get_many(pairs, [d.key for d in plan.directions])
    if len(projected) < len(set(pairs)):
        return False
    # What the loaded path counts when every lookup hits (unique keys, as its caches count them).
    scored.prompts_cut += sum(p.cut for p in prepared)
    scored.generation_stats["hits"] += len(set(y_prime_keys))
    scored.scoring.reused += len(set(pairs))
    for stage, size in (("generate", len(chunk)), ("score", 2 * len(chunk))):
        report = progress(stage, size)
        if report is not None:
            report(stage, 0, 0)
    n = len(samples)
    scored.spool.extend(
        sample_score(
            index,
            sample,
            y_prime.text,
            y_prime.hit_token_limit,
            projected[pairs[i]][1] or prepared[i].cut,  # as the loaded path: prompt or x + y cut
            np.asarray(projected[pairs[i]][0], dtype=np.float64),
            np.asarray(projected[pairs[n + i]][0], dtype=np.float64),
            plan.rules,
        )
        for i, ((index, sample), y_prime) in enumerate(zip(chunk, y_primes, strict=True))
    )
    return True
