"""The one module that wires the stages together:

load dataset -> generate y' -> capture activations -> score (ΔP) -> rules -> findings -> ScreenResult

The samples stream through generation and scoring in chunks; per-sample results go to a spool.
Settings come from :mod:`datalint_persona.settings`; the workflow settings (``changed_since``,
``baseline``) from :mod:`datalint_persona.screening.workflow`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from datalint_persona.dataset.oversize import CHARS_PER_TOKEN_ESTIMATE
from datalint_persona.errors import PersonaLintError
from datalint_persona.run_records import ScreenResult
from datalint_persona.screening.result import Scored, build_result, now
from datalint_persona.screening.run_plan import RunPlan, plan_run
from datalint_persona.screening.sample_budget import early_sample_budget, warn_oversize
from datalint_persona.settings import ScreenOptions
from datalint_persona.types import Sample

if TYPE_CHECKING:
    from datalint_persona.dataset.input_check import SampleTally
    from datalint_persona.dataset.loaders import DatasetScan
    from datalint_persona.model.backends import GenerationBackend
    from datalint_persona.model.loading import LoadedModel
    from datalint_persona.screening.cached_chunk import RunCaches
    from datalint_persona.screening.model_source import ModelSource
    from datalint_persona.screening.sharding import Shard

ProgressCallback = Callable[[str, int, int], None]

__all__ = ["ProgressCallback", "resolve_options", "score_samples", "screen", "with_run_dtype"]


def screen(
    sources: Sequence[str],
    options: ScreenOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    loaded_model: LoadedModel | None = None,
    **overrides: Any,
) -> ScreenResult:
    """Screen datasets and return every score and finding; the CLI prints exactly this.

    Without ``options``, the settings are those of the nearest ``.persona-lint.yaml`` (or
    ``[tool.persona-lint]`` in ``pyproject.toml``) from the working directory upwards, over the
    defaults, as for the CLI (:func:`datalint_persona.settings.screen_options`). An explicit
    :class:`ScreenOptions` is used as it is, and no config is read. Keyword ``overrides`` (field
    names of :class:`ScreenOptions`) win over both.

    The samples stream through generation and scoring ``options.chunk_size`` at a time, and each
    chunk's per-sample results go to a spool on disk (``result.samples``), so the memory a run
    holds does not grow with the dataset beyond a few numbers per sample. ``changed_since`` and
    ``baseline`` are read before the model loads and applied to the findings at the end.

    ``loaded_model`` reuses a model loaded with :func:`datalint_persona.model.loading.load_model` across
    calls (it must be the one ``options.model`` names); otherwise the model is loaded here.

    >>> result = screen(["train.jsonl"], fail_on="warning")  # doctest: +SKIP
    >>> [f.location for f in result.findings]  # doctest: +SKIP
    """
    from datalint_persona.dataset.sources import check_sources
    from datalint_persona.screening.model_source import StaleModelFacts

    opts = resolve_options(options, overrides)
    sources = check_sources(sources)  # a folder's files, each named as if given alone
    try:
        return _screen(sources, opts, progress, loaded_model)
    except StaleModelFacts as stale:  # the cached facts were not the loaded model's: again, with it
        return _screen(sources, opts, progress, stale.loaded)


def _screen(
    sources: Sequence[str],
    opts: ScreenOptions,
    progress: ProgressCallback | None,
    loaded_model: LoadedModel | None,
) -> ScreenResult:
    from datalint_persona.model.loading import resolve_model
    from datalint_persona.persona.store import find_vectors
    from datalint_persona.screening.model_source import ModelSource
    from datalint_persona.screening.sharding import parse_shard
    from datalint_persona.screening.workflow import finish_workflow, prepare_workflow
    from datalint_persona.verdicts.inline_ignore import check_ignored_traits, ignorable_traits

    started = now()
    opts = with_run_dtype(opts, loaded_model)
    workflow = prepare_workflow(opts.changed_since, opts.baseline, sources)
    spec = loaded_model.spec if loaded_model is not None else resolve_model(opts.model)
    vectors = find_vectors(opts.vectors, spec.name, opts.traits)
    shard = parse_shard(opts.shard) if opts.shard else None
    scan = first_scan(sources, opts, None if loaded_model is None else loaded_model.context_length)
    check_ignored_traits(scan.ignored_traits, ignorable_traits(v.trait for v in vectors))
    # The model loads only when a chunk needs what the caches lack (see model_source).
    model = ModelSource(
        spec,
        device=opts.device,
        dtype=opts.dtype,
        cache_dir=opts.cache_dir,
        progress=progress,
        loaded=loaded_model,
    )
    plan = plan_run(opts, spec, vectors, model.facts)
    scored, cache_warnings = score_samples(sources, scan, shard, plan, model, progress)
    scored.cache_warnings[:0] = model.warnings
    result = build_result(plan, model.facts.describe(spec), scan, shard, scored, cache_warnings, started)
    return finish_workflow(result, workflow)


def resolve_options(options: ScreenOptions | None, overrides: Mapping[str, Any]) -> ScreenOptions:
    """``options`` as given, or the discovered config's; ``overrides`` on top of either."""
    if options is not None:
        return replace(options, **overrides)
    from datalint_persona.config_file import discover_config
    from datalint_persona.settings import screen_options

    return screen_options(overrides, discover_config())


def with_run_dtype(opts: ScreenOptions, loaded_model: LoadedModel | None = None) -> ScreenOptions:
    """``opts`` with ``dtype`` as this run resolves it (``auto``: by the device's hardware, see
    :func:`~datalint_persona.model.dtypes.resolve_dtype`; a model passed in: the dtype it has), so
    that the cache keys and the report hold the dtype the model runs in.

    >>> with_run_dtype(ScreenOptions(device="cpu", dtype="float32")).dtype
    'float32'
    """
    if loaded_model is not None:
        return replace(opts, dtype=str(loaded_model.model.dtype).removeprefix("torch."))
    from datalint_persona.model.dtypes import resolve_dtype
    from datalint_persona.model.loading import resolve_device

    return replace(opts, dtype=resolve_dtype(opts.dtype, resolve_device(opts.device)))


def first_scan(sources: Sequence[str], opts: ScreenOptions, context_length: int | None = None) -> DatasetScan:
    """The first pass over the data, before any model loads: every record checked and counted
    (the samples are read again, streamed, for the work), and the samples far over the token budget
    named on stderr at once. ``context_length`` lowers the budget where the model is known already.
    """
    from datalint_persona.dataset.field_names import FieldNames
    from datalint_persona.dataset.loaders import scan_dataset

    budget = early_sample_budget(opts, context_length)
    scan = scan_dataset(
        sources,
        skip_invalid=opts.skip_invalid,
        split=opts.split,
        max_samples=opts.max_samples,
        names=FieldNames.of(opts.prompt_field, opts.response_field),
        oversize_chars=CHARS_PER_TOKEN_ESTIMATE * budget,
    )
    if not scan.n_samples and not scan.invalid:
        raise PersonaLintError("No samples to screen.", fix="pass at least one non-empty dataset.")
    warn_oversize(scan, budget)
    return scan


def score_samples(
    sources: Sequence[str],
    scan: DatasetScan,
    shard: Shard | None,
    plan: RunPlan,
    model: ModelSource,
    progress: ProgressCallback | None,
) -> tuple[Scored, list[str]]:
    """Generate y' and score every owned sample, chunk by chunk; the scores and the projection
    cache's warnings. The samples are read a second time here, and must not have changed.

    Until the model is loaded, each chunk is first looked up in the caches alone
    (:func:`~datalint_persona.screening.cached_chunk.score_from_caches`); the first chunk that
    misses anything loads the model, and from then on every chunk takes the loaded path. A Ray
    worker runs exactly this for its shard (:mod:`datalint_persona.distributed`).
    """
    from datalint_persona.dataset.field_names import FieldNames
    from datalint_persona.dataset.input_check import SampleTally, check_unchanged
    from datalint_persona.dataset.loaders import iter_dataset
    from datalint_persona.screening.cached_chunk import RunCaches, score_from_caches
    from datalint_persona.screening.scoring import ScoringStats
    from datalint_persona.screening.spool import SampleSpool

    opts = plan.options
    scored = Scored(SampleSpool(), ScoringStats(), {"hits": 0, "misses": 0, "corrupted": 0}, [])
    n_owned = sum(1 for g in range(scan.n_samples) if shard is None or shard.owns(g))
    stages = _RunProgress(progress, {"generate": n_owned, "score": 2 * n_owned})
    caches = RunCaches.open(opts.cache_dir, model.facts.cache_scope)
    backend: GenerationBackend | None = None
    records = iter_dataset(
        sources,
        skip_invalid=opts.skip_invalid,
        split=opts.split,
        max_samples=opts.max_samples,
        names=FieldNames.of(opts.prompt_field, opts.response_field),
    )
    try:
        second_read = SampleTally()
        samples = (item for item in records if isinstance(item, Sample))
        for chunk in _owned_chunks(samples, shard, opts.chunk_size, second_read):
            if not model.is_loaded and score_from_caches(
                chunk, plan, model.facts, caches, scored, stages.chunk
            ):
                continue
            if backend is None:
                backend = _backend(plan, model.loaded, progress)
            _score_chunk(chunk, plan, model, backend, caches, stages, scored)
        check_unchanged(sources, scan, second_read)
    finally:
        caches.close()
    # Entries the cache-only lookups found damaged are regenerated by the loaded path, which
    # counts them as misses; the damage is counted here.
    scored.generation_stats["corrupted"] += caches.generations.stats.corrupted
    scored.cache_warnings += caches.warnings
    scored.model_loaded = model.is_loaded
    return scored, caches.projections.warnings


def _backend(plan: RunPlan, loaded: LoadedModel, progress: ProgressCallback | None) -> GenerationBackend:
    from datalint_persona.model.backends import make_backend

    opts = plan.options
    # y' projections recorded while generating spare scoring a second pass over y'. The backend
    # reports each batch's decoding steps to the run's callback directly (they are not chunked).
    return make_backend(
        opts.backend,
        loaded,
        tensor_parallel_size=opts.tensor_parallel_size,
        gpu_memory_utilization=opts.gpu_memory_utilization,
        record_directions=plan.directions,
        progress=progress,
    )


def _score_chunk(
    chunk: Sequence[tuple[int, Sample]],
    plan: RunPlan,
    model: ModelSource,
    backend: GenerationBackend,
    caches: RunCaches,
    stages: _RunProgress,
    scored: Scored,
) -> None:
    """Generate the chunk's y', project y and y', and add the samples' scores to ``scored``."""
    from datalint_persona.model.chat import fit_prompt
    from datalint_persona.screening.cached_chunk import remember_prompts
    from datalint_persona.screening.generation import generate_y_prime
    from datalint_persona.screening.scoring import project_responses, sample_score

    loaded = model.loaded
    samples = [sample for _, sample in chunk]
    fitted = [
        fit_prompt(loaded.tokenizer, s.prompt, plan.prompt_budget, fallback=plan.generation_budget)
        for s in samples
    ]
    remember_prompts(caches, plan, model.facts, loaded.tokenizer, samples, fitted)
    prompts = [prompt for prompt, _ in fitted]
    scored.prompts_cut += sum(cut for _, cut in fitted)
    opts = plan.options
    generations, generated = generate_y_prime(
        loaded,
        prompts,
        plan.generation,
        backend=backend,
        cache_dir=opts.cache_dir,
        batch_size=opts.batch_size,
        progress=stages.chunk("generate", len(chunk)),
    )
    for key in scored.generation_stats:
        scored.generation_stats[key] += getattr(generated.stats, key)
    scored.cache_warnings += generated.warnings
    # y and y' go through one call, so that both share its batches and cache: n (x, y) pairs
    # first, then the n (x, y') pairs in the same order.
    projections, truncated = project_responses(
        loaded,
        [*prompts, *prompts],
        [*(s.response for s in samples), *(g.text for g in generations)],
        plan.directions,
        max_tokens=plan.max_tokens,
        batch_size=opts.batch_size,
        cache=caches.projections,
        recorded=[*(None for _ in samples), *(g.recorded for g in generations)],
        stats=scored.scoring,
        progress=stages.chunk("score", 2 * len(chunk)),
    )
    by_y, by_y_prime = projections[: len(samples)], projections[len(samples) :]
    scored.spool.extend(
        sample_score(
            index,
            sample,
            g.text,
            g.hit_token_limit,
            truncated[i] or fitted[i][1],  # a sample is cut when its prompt or its x + y was
            by_y[i],
            by_y_prime[i],
            plan.rules,
        )
        for i, ((index, sample), g) in enumerate(zip(chunk, generations, strict=True))
    )


def _owned_chunks(
    samples: Iterable[Sample], shard: Shard | None, size: int, tally: SampleTally
) -> Iterator[list[tuple[int, Sample]]]:
    """``(global index, sample)`` of the samples this shard owns, ``size`` at a time; ``tally``
    counts and hashes every sample read."""
    chunk: list[tuple[int, Sample]] = []
    for index, sample in enumerate(samples):
        tally.add(sample)
        if shard is not None and not shard.owns(index):
            continue
        chunk.append((index, sample))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _RunProgress:
    """Reports each stage over the whole run while the run works chunk by chunk.

    A chunk's stage reports ``(done, todo)`` over the work it has left after its caches; the
    run's callback gets ``(finished before this chunk + what the caches spared + done, total)``.
    Other stages reported through a chunk's callback (``y-prime-cut``) pass through unchanged.
    """

    def __init__(self, progress: ProgressCallback | None, totals: Mapping[str, int]) -> None:
        self.progress = progress
        self.totals = dict(totals)
        self.offsets = dict.fromkeys(totals, 0)

    def chunk(self, stage: str, size: int) -> ProgressCallback | None:
        if self.progress is None:
            return None
        report, offset, total = self.progress, self.offsets[stage], self.totals[stage]
        self.offsets[stage] += size

        def chunk_report(name: str, done: int, todo: int) -> None:
            if name != stage:
                report(name, done, todo)
                return
            report(name, offset + (size - todo) + done, total)

        return chunk_report
