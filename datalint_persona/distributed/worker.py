"""The worker side of a Ray run: the actor that holds one model replica and screens shards, and
what it sends back (a shard's scores, or the error that stopped it)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona.errors import PersonaLintError
from datalint_persona.run_records import ModelInfo
from datalint_persona.settings import ScreenOptions
from datalint_persona.types import SampleScore

if TYPE_CHECKING:
    from datalint_persona.dataset.loaders import DatasetScan
    from datalint_persona.screening.run_plan import RunPlan
    from datalint_persona.screening.scoring import ScoringStats

__all__ = ["ShardOutcome", "ShardScreener", "WorkerError"]


@dataclass(frozen=True)
class ShardOutcome:
    """What one shard's worker sends back: its per-sample scores and what its caches did."""

    shard: int
    samples: tuple[SampleScore, ...]
    generation_stats: dict[str, int]
    scoring: ScoringStats
    cache_warnings: tuple[str, ...]
    projection_warnings: tuple[str, ...]
    prompts_cut: int
    model: ModelInfo
    plan: RunPlan


@dataclass(frozen=True)
class WorkerError:
    """A :class:`PersonaLintError` a worker met, sent back as data: Ray's wrappers of a failed
    actor keep only its text, and the caller must get the problem and its fix."""

    problem: str
    fix: str | None

    @classmethod
    def of(cls, error: PersonaLintError) -> WorkerError:
        text = str(error)  # with the place (file:line) an InputError puts in front
        suffix = f" Fix: {error.fix}" if error.fix else ""
        return cls(text[: len(text) - len(suffix)] if suffix else text, error.fix)

    def error(self) -> PersonaLintError:
        return PersonaLintError(self.problem, fix=self.fix)


class ShardScreener:
    """A Ray Data actor: one model replica, which screens the shards it is handed.

    Ray creates it with ``fn_constructor_kwargs`` and calls it with batches of shard numbers
    (``{"shard": [2, 7]}``); each answer row holds a :class:`ShardOutcome` (a Python object in the batch), or the
    :class:`WorkerError` that stopped the worker (a model or vector it can't find, a dataset that
    changed), which the driver raises.
    """

    def __init__(
        self, sources: Sequence[str], options: ScreenOptions, scan: DatasetScan, shards: int, working_dir: str
    ) -> None:
        # Relative paths (files, cache, vectors) mean what they meant to the driver, where the
        # worker sees the same folders (one machine, or a shared file system).
        if os.path.isdir(working_dir):
            os.chdir(working_dir)
        self.sources = list(sources)
        self.scan = scan
        self.shards = shards
        self.failed: WorkerError | None = None
        try:
            self.load(options)
        except PersonaLintError as error:
            self.failed = WorkerError.of(error)

    def load(self, options: ScreenOptions) -> None:
        """Load the model replica and resolve the run's plan (rules, directions, budgets)."""
        from datalint_persona.model.loading import load_model, resolve_model
        from datalint_persona.persona.store import find_vectors
        from datalint_persona.screening.engine import with_run_dtype
        from datalint_persona.screening.model_source import ModelSource
        from datalint_persona.screening.run_plan import plan_run

        options = with_run_dtype(options)  # by this worker's own hardware
        self.spec = resolve_model(options.model)
        # A replica loads its model at once: it is started to generate.
        loaded = load_model(self.spec, device=options.device, dtype=options.dtype)
        self.model = ModelSource(
            self.spec, device=options.device, dtype=options.dtype, cache_dir=options.cache_dir, loaded=loaded
        )
        vectors = find_vectors(options.vectors, self.spec.name, options.traits)
        self.plan = plan_run(options, self.spec, vectors, self.model.facts)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        indices = [int(index) for index in batch["shard"]]
        answers: list[ShardOutcome | WorkerError] = []
        for index in indices:
            if self.failed is not None:
                answers.append(self.failed)
                continue
            try:
                answers.append(self.screen_shard(index))
            except PersonaLintError as error:
                answers.append(WorkerError.of(error))
        # Ray Data keeps Python objects that Arrow can't hold as objects (serialized by Ray itself).
        outcomes = np.empty(len(answers), dtype=object)
        outcomes[:] = answers
        return {"shard": indices, "outcome": outcomes}

    def screen_shard(self, index: int) -> ShardOutcome:
        """Generate y' and score the samples of shard ``index`` of ``self.shards``."""
        from datalint_persona.screening.engine import score_samples
        from datalint_persona.screening.sharding import Shard

        scored, projection_warnings = score_samples(
            self.sources, self.scan, Shard(index, self.shards), self.plan, self.model, None
        )
        try:
            samples = tuple(scored.spool)
        finally:
            scored.spool.close()
        return ShardOutcome(
            shard=index,
            samples=samples,
            generation_stats=dict(scored.generation_stats),
            scoring=scored.scoring,
            cache_warnings=tuple(scored.cache_warnings),
            projection_warnings=tuple(projection_warnings),
            prompts_cut=scored.prompts_cut,
            model=self.model.facts.describe(self.spec),
            plan=self.plan,
        )
