"""The driver side of a Ray run: read the records once, hand the shards to a Ray Data pipeline
over model-replica actors, and build the result once over every shard's scores."""

from __future__ import annotations

import heapq
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from datalint_persona.distributed.worker import ShardOutcome, ShardScreener, WorkerError
from datalint_persona.errors import ConfigError, MissingDependencyError, PersonaLintError
from datalint_persona.run_records import ScreenResult
from datalint_persona.settings import ScreenOptions

if TYPE_CHECKING:
    from datalint_persona.dataset.loaders import DatasetScan
    from datalint_persona.screening.engine import ProgressCallback
    from datalint_persona.screening.spool import SampleSpool

__all__ = ["import_ray", "screen_dataset"]

# Shards per replica: a shard is the unit that a worker failure makes Ray run again, and
# several per replica keep the replicas busy when the shards take unequal time.
SHARDS_PER_REPLICA = 4


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or the ``pip install`` line that provides it."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is a separate part of the ray package)
    except ImportError:
        raise MissingDependencyError("ray", extra="ray", why="screening on a Ray cluster (--ray)") from None
    return ray


def screen_dataset(
    sources: Sequence[str],
    options: ScreenOptions | None = None,
    *,
    address: str | None = None,
    replicas: int = 1,
    gpus_per_replica: float = 0.0,
    cpus_per_replica: float = 1.0,
    shards: int | None = None,
    screener: type[ShardScreener] = ShardScreener,
    progress: ProgressCallback | None = None,
    **overrides: Any,
) -> ScreenResult:
    """Screen datasets on Ray: the :class:`ScreenResult` that ``screen(sources, options)`` returns.

    ``options`` and ``overrides`` mean what they mean to
    :func:`~datalint_persona.screening.engine.screen`. Ray is joined at ``address`` (``"auto"``: the
    cluster this machine belongs to; ``"ray://head:10001"``: a remote one; ``None``: a Ray started
    on this machine), unless the caller has already called ``ray.init``. ``replicas`` model
    replicas run at once, each an actor with ``gpus_per_replica`` GPUs (set it to
    ``--tensor-parallel-size`` for vLLM) and ``cpus_per_replica`` CPUs. ``shards`` (default: 4 per
    replica) is how many parts the samples are split into. Every worker must see the dataset files,
    the vectors, and ``cache_dir`` for the caches to serve, under the driver's paths.

    >>> result = screen_dataset(["train.jsonl"], address="auto", replicas=8, gpus_per_replica=1)  # doctest: +SKIP
    """
    from datalint_persona.dataset.sources import STDIN, check_sources
    from datalint_persona.screening.engine import first_scan, resolve_options
    from datalint_persona.screening.result import now
    from datalint_persona.screening.workflow import finish_workflow, prepare_workflow

    ray = import_ray()
    opts = resolve_options(options, overrides)
    if opts.shard:
        raise ConfigError(
            f"--shard {opts.shard} and --ray both split the run.",
            fix="drop --shard: Ray splits the samples itself and returns the whole report.",
        )
    if replicas < 1:
        raise ConfigError(
            f"replicas={replicas}: at least one model replica is needed.", fix="pass 1 or more."
        )
    if STDIN in sources:
        raise ConfigError(
            "'-' (standard input) can't be screened on Ray: the workers can't read this process's input.",
            fix="save the data to a file that every worker sees, and pass its path.",
        )
    sources = check_sources(sources)
    started = now()
    workflow = prepare_workflow(opts.changed_since, opts.baseline, sources)
    scan = first_scan(sources, opts)  # before any worker loads a model
    count = max(1, min(shards or SHARDS_PER_REPLICA * replicas, scan.n_samples))
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=address, log_to_driver=False)
    try:
        outcomes = _run_shards(
            ray, screener, sources, opts, scan, count, replicas, gpus_per_replica, cpus_per_replica, progress
        )
    finally:
        if started_ray:
            ray.shutdown()
    return finish_workflow(_combine(outcomes, scan, started), workflow)


def _run_shards(
    ray: Any,
    screener: type[ShardScreener],
    sources: Sequence[str],
    opts: ScreenOptions,
    scan: DatasetScan,
    count: int,
    replicas: int,
    gpus_per_replica: float,
    cpus_per_replica: float,
    progress: ProgressCallback | None,
) -> list[tuple[ShardOutcome, SampleSpool]]:
    """Each shard's outcome (without its samples) and its samples on disk, from a Ray Data pipeline
    over a pool of ``replicas`` actors. The driver holds one shard's samples in memory at a time."""
    from datalint_persona.screening.spool import SampleSpool

    shards = ray.data.from_items([{"shard": i} for i in range(1, count + 1)], override_num_blocks=count)
    screened = shards.map_batches(
        screener,
        fn_constructor_kwargs={
            "sources": list(sources),
            "options": opts,
            "scan": scan,
            "shards": count,
            "working_dir": os.getcwd(),
        },
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=min(replicas, count)),
        num_cpus=cpus_per_replica,
        num_gpus=gpus_per_replica,
    )
    outcomes: list[tuple[ShardOutcome, SampleSpool]] = []
    if progress:
        progress("shards", 0, count)
    for row in screened.iter_rows():
        answer = row["outcome"]
        if isinstance(answer, WorkerError):
            raise answer.error()
        spool = SampleSpool()
        spool.extend(answer.samples)
        outcomes.append((replace(answer, samples=()), spool))
        if progress:
            progress("shards", len(outcomes), count)
    if sorted(o.shard for o, _ in outcomes) != list(range(1, count + 1)):
        raise PersonaLintError(
            f"Ray returned {len(outcomes)} shard results for {count} shards.",
            fix="run again; the caches keep the work that was done.",
        )
    return outcomes


def _combine(
    outcomes: Sequence[tuple[ShardOutcome, SampleSpool]], scan: DatasetScan, started: str
) -> ScreenResult:
    """One run's result from every shard's outcome: the samples in run order, the caches' counts
    summed, and every verdict decided once over all samples."""
    from datalint_persona.model.activations import ForwardWork
    from datalint_persona.screening.result import Scored, build_result
    from datalint_persona.screening.scoring import ScoringStats
    from datalint_persona.screening.spool import SampleSpool
    from datalint_persona.verdicts.inline_ignore import check_ignored_traits, ignorable_traits

    ordered = [outcome for outcome, _ in sorted(outcomes, key=lambda pair: pair[0].shard)]
    _check_one_dtype(ordered)
    work = ForwardWork(
        tokens=sum(o.scoring.work.tokens for o in ordered),
        attention_pairs=sum(o.scoring.work.attention_pairs for o in ordered),
    )
    scoring = ScoringStats(
        reused=sum(o.scoring.reused for o in ordered),
        from_generation=sum(o.scoring.from_generation for o in ordered),
        forwarded=sum(o.scoring.forwarded for o in ordered),
        work=work,
    )
    generation_stats = {
        key: sum(o.generation_stats[key] for o in ordered) for key in ordered[0].generation_stats
    }
    # Each shard's samples are in run order already: merging them streams from disk to disk.
    spool = SampleSpool()
    spool.extend(heapq.merge(*(shard_spool for _, shard_spool in outcomes), key=lambda s: s.index))
    for _, shard_spool in outcomes:
        shard_spool.close()
    scored = Scored(
        spool,
        scoring,
        generation_stats,
        [w for o in ordered for w in o.cache_warnings],
        prompts_cut=sum(o.prompts_cut for o in ordered),
    )
    projection_warnings = list(dict.fromkeys(w for o in ordered for w in o.projection_warnings))
    first = ordered[0]
    # The engine checks the data's own suppressions before the model loads; a Ray driver knows the
    # run's vectors only from its shards.
    check_ignored_traits(scan.ignored_traits, ignorable_traits(v.trait for v in first.plan.vectors))
    return build_result(first.plan, first.model, scan, None, scored, projection_warnings, started)


def _check_one_dtype(outcomes: Sequence[ShardOutcome]) -> None:
    """Refuse a run whose workers resolved ``--dtype auto`` differently (CPUs with and without bf16
    units, say): its ΔP would mix two number formats under one report's ``dtype``."""
    dtypes = sorted({o.plan.options.dtype for o in outcomes})
    if len(dtypes) > 1:
        raise PersonaLintError(
            f"The Ray workers ran the model in different dtypes ({', '.join(dtypes)}): "
            "--dtype auto picks by each worker's hardware.",
            fix="pass --dtype float32 or --dtype bfloat16 so that every worker uses the same one.",
        )
