"""The one module that wires the stages together:

load dataset -> generate y' -> capture activations -> score (ΔP) -> rules -> findings -> ScreenResult

The samples stream through generation and scoring in chunks; per-sample results go to a spool.
Settings come from :mod:`datalint_persona.settings`; the workflow settings (``changed_since``,
``baseline``) from :mod:`datalint_persona.screening.workflow`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from datalint_persona import __version__
from datalint_persona.errors import ConfigError, PersonaLintError
from datalint_persona.paths import display_path
from datalint_persona.settings import ScreenOptions
from datalint_persona.types import Direction, InvalidRecord, RuleInfo, Sample, ScreenResult
from datalint_persona.verdicts.findings import dataset_findings, invalid_findings, sample_findings
from datalint_persona.verdicts.summaries import count_warnings

if TYPE_CHECKING:
    from datalint_persona.dataset.input_check import SampleTally
    from datalint_persona.dataset.loaders import DatasetScan
    from datalint_persona.model.backends import GenerationBackend, GenerationSettings
    from datalint_persona.model.loading import LoadedModel, ModelSpec
    from datalint_persona.persona.vectors import PersonaVector
    from datalint_persona.screening.generation import CalibratedGeneration
    from datalint_persona.screening.projection_cache import ProjectionCache
    from datalint_persona.screening.scoring import ScoringStats
    from datalint_persona.screening.sharding import Shard
    from datalint_persona.screening.spool import SampleSpool

ProgressCallback = Callable[[str, int, int], None]

__all__ = ["ProgressCallback", "ScreenOptions", "screen"]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class _Plan:
    """What a run resolves once, before its first chunk: rules, directions and token budgets."""

    options: ScreenOptions
    vectors: tuple[PersonaVector, ...]
    all_rules: tuple[RuleInfo, ...]  # disabled rules too: the report lists every rule
    rules: tuple[RuleInfo, ...]  # the enabled ones; column j of the projections is rules[j]
    directions: tuple[Direction, ...]
    max_tokens: int
    max_new_tokens: int
    generation: GenerationSettings
    calibrated: CalibratedGeneration
    prompt_budget: int  # tokens a prompt keeps beside y' (see _prompt_budget)
    generation_budget: int  # tokens a prompt keeps for generation when scoring cannot keep it whole


@dataclass
class _Scored:
    """What the chunk loop gathers over the run: the scores, and what the caches and cuts did."""

    spool: SampleSpool
    scoring: ScoringStats
    generation_stats: dict[str, int]
    cache_warnings: list[str]
    prompts_cut: int = 0


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
    from datalint_persona.dataset.loaders import scan_dataset
    from datalint_persona.model.loading import resolve_model
    from datalint_persona.persona.store import find_vectors
    from datalint_persona.screening.sharding import parse_shard
    from datalint_persona.screening.workflow import finish_workflow, prepare_workflow

    opts = _resolve_options(options, overrides)
    started = _now()
    workflow = prepare_workflow(opts.changed_since, opts.baseline, sources)
    spec = loaded_model.spec if loaded_model is not None else resolve_model(opts.model)
    vectors = find_vectors(opts.vectors, spec.name, opts.traits)
    shard = parse_shard(opts.shard) if opts.shard else None
    # A first pass checks every record and counts them before the model loads; the samples are
    # read again (streamed) for the work.
    scan = scan_dataset(
        sources, skip_invalid=opts.skip_invalid, split=opts.split, max_samples=opts.max_samples
    )
    if not scan.n_samples and not scan.invalid:
        raise PersonaLintError("No samples to screen.", fix="pass at least one non-empty dataset.")
    loaded = loaded_model if loaded_model is not None else _load(spec, opts.device, progress)
    plan = _plan_run(opts, spec, vectors, loaded)
    scored, cache_warnings = _score_samples(sources, scan, shard, plan, loaded, progress)
    result = _result(plan, loaded, scan, shard, scored, cache_warnings, started)
    return finish_workflow(result, workflow)


def _resolve_options(options: ScreenOptions | None, overrides: Mapping[str, Any]) -> ScreenOptions:
    """``options`` as given, or the discovered config's; ``overrides`` on top of either."""
    if options is not None:
        return replace(options, **overrides)
    from datalint_persona.settings import discover_config, screen_options

    return screen_options(overrides, discover_config())


def _load(spec: ModelSpec, device: str, progress: ProgressCallback | None) -> LoadedModel:
    from datalint_persona.model.loading import load_model, resolve_device

    if progress:
        progress("load-model", 0, 1)
    loaded = load_model(spec, device=resolve_device(device))
    if progress:
        progress("load-model", 1, 1)
    return loaded


def _plan_run(
    opts: ScreenOptions, spec: ModelSpec, vectors: Sequence[PersonaVector], loaded: LoadedModel
) -> _Plan:
    """Check the vectors against the model, resolve their rules, and fix the y' and token budgets."""
    from datalint_persona.model.backends import GenerationSettings
    from datalint_persona.screening.generation import calibrated_generation
    from datalint_persona.verdicts.rules import default_rule_for, resolve_rule, shipped_rules

    defaults = shipped_rules()
    all_rules: list[RuleInfo] = []
    for vector in vectors:
        vector.check_model(loaded.identity, loaded.num_layers, loaded.hidden_size, spec.name)
        default = defaults.get(vector.trait) or default_rule_for(vector.trait)
        all_rules.append(resolve_rule(default, vector, opts.rule_overrides.get(vector.trait, {})))
    rules = tuple(r for r in all_rules if r.enabled)
    if not rules:
        raise PersonaLintError("Every rule is disabled.", fix="enable at least one rule in the config.")
    by_trait = {v.trait: v for v in vectors}
    max_tokens = opts.max_tokens or loaded.context_length
    # One y' policy for calibration and screening: a sample's ΔP never depends on the rest of the run.
    calibrated = calibrated_generation(vectors)
    max_new = opts.max_new_tokens or calibrated.max_new_tokens
    return _Plan(
        options=opts,
        vectors=tuple(vectors),
        all_rules=tuple(all_rules),
        rules=rules,
        directions=tuple(Direction(r.trait, r.layer, by_trait[r.trait].unit(r.layer)) for r in rules),
        max_tokens=max_tokens,
        max_new_tokens=max_new,
        generation=GenerationSettings(max_new_tokens=max_new, temperature=opts.temperature, seed=opts.seed),
        calibrated=calibrated,
        # One cut for generation and scoring: a long prompt loses its oldest tokens so that it and y'
        # fit, and y' is scored under the very prompt it was generated from.
        prompt_budget=_prompt_budget(max_tokens, loaded.context_length, max_new),
        generation_budget=loaded.context_length - max_new,
    )


def _score_samples(
    sources: Sequence[str],
    scan: DatasetScan,
    shard: Shard | None,
    plan: _Plan,
    loaded: LoadedModel,
    progress: ProgressCallback | None,
) -> tuple[_Scored, list[str]]:
    """Generate y' and score every owned sample, chunk by chunk; the scores and the projection
    cache's warnings. The samples are read a second time here, and must not have changed."""
    from datalint_persona.dataset.input_check import SampleTally, check_unchanged
    from datalint_persona.dataset.loaders import iter_dataset
    from datalint_persona.model.backends import make_backend
    from datalint_persona.screening.cache_identity import cache_identity
    from datalint_persona.screening.projection_cache import ProjectionCache
    from datalint_persona.screening.scoring import ScoringStats
    from datalint_persona.screening.spool import SampleSpool

    opts = plan.options
    # y' projections recorded while generating spare scoring a second pass over y'.
    backend = make_backend(
        opts.backend,
        loaded,
        tensor_parallel_size=opts.tensor_parallel_size,
        gpu_memory_utilization=opts.gpu_memory_utilization,
        record_directions=plan.directions,
    )
    scored = _Scored(SampleSpool(), ScoringStats(), {"hits": 0, "misses": 0, "corrupted": 0}, [])
    n_owned = sum(1 for g in range(scan.n_samples) if shard is None or shard.owns(g))
    stages = _RunProgress(progress, {"generate": n_owned, "score": 2 * n_owned})
    cache = ProjectionCache(
        opts.cache_dir, scope=cache_identity(loaded) if opts.cache_dir is not None else ""
    )
    records = iter_dataset(
        sources, skip_invalid=opts.skip_invalid, split=opts.split, max_samples=opts.max_samples
    )
    try:
        second_read = SampleTally()
        samples = (item for item in records if isinstance(item, Sample))
        for chunk in _owned_chunks(samples, shard, opts.chunk_size, second_read):
            _score_chunk(chunk, plan, loaded, backend, cache, stages, scored)
        check_unchanged(sources, scan, second_read)
    finally:
        cache.close()
    return scored, cache.warnings


def _score_chunk(
    chunk: Sequence[tuple[int, Sample]],
    plan: _Plan,
    loaded: LoadedModel,
    backend: GenerationBackend,
    cache: ProjectionCache,
    stages: _RunProgress,
    scored: _Scored,
) -> None:
    """Generate the chunk's y', project y and y', and add the samples' scores to ``scored``."""
    from datalint_persona.model.chat import fit_prompt
    from datalint_persona.screening.generation import generate_y_prime
    from datalint_persona.screening.scoring import project_responses, sample_score

    samples = [sample for _, sample in chunk]
    fitted = [
        fit_prompt(loaded.tokenizer, s.prompt, plan.prompt_budget, fallback=plan.generation_budget)
        for s in samples
    ]
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
        cache=cache,
        recorded=[*(None for _ in samples), *(g.recorded for g in generations)],
        stats=scored.scoring,
        progress=stages.chunk("score", 2 * len(chunk)),
    )
    by_y, by_y_prime = projections[: len(samples)], projections[len(samples) :]
    scored.spool.extend(
        sample_score(
            index, sample, g.text, g.hit_token_limit, truncated[i], by_y[i], by_y_prime[i], plan.rules
        )
        for i, ((index, sample), g) in enumerate(zip(chunk, generations, strict=True))
    )


def _result(
    plan: _Plan,
    loaded: LoadedModel,
    scan: DatasetScan,
    shard: Shard | None,
    scored: _Scored,
    projection_warnings: Sequence[str],
    started: str,
) -> ScreenResult:
    """Decide the verdicts over the whole run and gather everything the reporters print."""
    from datalint_persona.model.loading import describe
    from datalint_persona.screening.spool import SampleSpool
    from datalint_persona.verdicts.decide import annotate, decide

    opts, rules = plan.options, plan.rules
    # A shard scores its share of the samples; shard 1 alone reports the invalid records.
    invalid = scan.invalid if shard is None or shard.index == 1 else []
    verdicts = decide(scored.spool, rules, fdr=opts.fdr, dataset_alpha=opts.dataset_fpr, seed=opts.seed)
    annotated = SampleSpool()
    annotated.extend(annotate(scored.spool, rules, verdicts))
    findings = [
        *invalid_findings(invalid),
        *dataset_findings(verdicts.summaries, rules),
        *sample_findings(annotated, rules, verdicts.flagged, opts.fdr),
    ]
    warnings = [*dict.fromkeys(scored.cache_warnings), *projection_warnings]
    warnings += _run_warnings(plan, scan, invalid, scored.prompts_cut)
    warnings += count_warnings(annotated, plan.max_tokens, plan.max_new_tokens)
    return ScreenResult(
        tool_version=__version__,
        model=describe(loaded),
        settings=_run_settings(plan, scan, shard),
        vectors=tuple(_vector_record(v) for v in plan.vectors),
        rules=plan.all_rules,
        sources=tuple(dict.fromkeys([*scan.sizes, *(r.source for r in invalid)])),
        samples=annotated,
        summaries=verdicts.summaries,
        findings=tuple(findings),
        invalid=tuple(invalid),
        started_at=started,
        finished_at=_now(),
        warnings=tuple(warnings),
        cache_stats={**scored.generation_stats, **scored.scoring.as_dict()},
        calibration=_calibration_values(rules, {v.trait: v for v in plan.vectors}),
        inputs=scan.inputs,
    )


def _run_warnings(
    plan: _Plan, scan: DatasetScan, invalid: Sequence[InvalidRecord], prompts_cut: int
) -> list[str]:
    """Warnings about the run's settings: y' policy, records not read, invalid records, cut prompts."""
    opts = plan.options
    warnings = list(plan.calibrated.mismatch_warnings(plan.generation))
    if scan.stopped_after is not None:
        warnings.append(
            f"--max-samples {opts.max_samples}: stopped reading after {scan.stopped_after}; "
            "the records after it were not screened."
        )
    if invalid:
        warnings.append(f"{len(invalid)} invalid record(s) were skipped (--skip-invalid); see the findings.")
    if prompts_cut:
        warnings.append(
            f"{prompts_cut} prompt(s) were longer than the {plan.prompt_budget} tokens left beside y' "
            f"(the model's context and --max-tokens {plan.max_tokens}, less --max-new-tokens "
            f"{plan.max_new_tokens}); their oldest text was cut, and y and y' were scored under the cut "
            "prompt that y' was generated from."
        )
    return warnings


def _run_settings(plan: _Plan, scan: DatasetScan, shard: Shard | None) -> dict[str, object]:
    """The settings a report records (those that change its numbers)."""
    from datalint_persona.screening.sharding import shard_settings

    opts = plan.options
    settings: dict[str, object] = {
        "backend": opts.backend,
        "max_new_tokens": plan.max_new_tokens,
        "max_tokens": plan.max_tokens,
        "batch_size": opts.batch_size,
        "seed": opts.seed,
        "temperature": opts.temperature,
        "fail_on": opts.fail_on,
        "dataset_fpr": opts.dataset_fpr,
        "fdr": opts.fdr,
    }
    if shard is not None:
        settings["shard"] = shard_settings(shard, scan.sizes)
    return settings


def _vector_record(vector: PersonaVector) -> dict[str, Any]:
    """What a report records about a vector."""
    return {
        "trait": vector.trait,
        "file": display_path(vector.path or f"{vector.trait}.safetensors"),
        "sha256": vector.metadata["tensor_sha256"],
        "model_identity": vector.model_identity,
        "method": vector.metadata.get("method", "unknown"),
    }


def _prompt_budget(max_tokens: int, context_length: int, max_new_tokens: int) -> int:
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
            report(name, offset + (size - todo) + done, total)

        return chunk_report


def _calibration_values(
    rules: Sequence[RuleInfo], by_trait: Mapping[str, Any]
) -> dict[str, dict[str, tuple[float, ...]]]:
    """The calibration ΔP values (normal, trait) of each rule's vector, where stored at its layer."""
    values: dict[str, dict[str, tuple[float, ...]]] = {}
    for rule in rules:
        calibration = by_trait[rule.trait].calibration
        if calibration.get("layer") != rule.layer:
            continue
        stored = {name: calibration.get(f"{name}_delta_p") for name in ("normal", "trait")}
        values[rule.trait] = {name: tuple(map(float, v)) for name, v in stored.items() if v}
    return values
