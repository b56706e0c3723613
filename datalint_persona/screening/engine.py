"""The one module that wires the stages together:

load dataset -> generate y' -> capture activations -> score (ΔP) -> rules -> findings -> ScreenResult

The samples stream through generation and scoring in chunks; per-sample results go to a spool.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona import __version__
from datalint_persona.errors import ConfigError, PersonaLintError
from datalint_persona.paths import display_path
from datalint_persona.screening.reference import Reference
from datalint_persona.types import (
    Direction,
    RuleInfo,
    Sample,
    SampleScore,
    ScreenResult,
    TraitScore,
)
from datalint_persona.verdicts.findings import dataset_findings, invalid_findings, sample_findings
from datalint_persona.verdicts.summaries import count_warnings

if TYPE_CHECKING:
    from datalint_persona.dataset.input_check import SampleTally
    from datalint_persona.model.loading import LoadedModel
    from datalint_persona.screening.sharding import Shard

ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ScreenOptions:
    """Settings of one screening run; the CLI builds this from options and config."""

    model: str = "smollm2-135m-instruct"
    backend: str = "transformers"
    vectors: str | None = None
    traits: tuple[str, ...] | None = None
    max_new_tokens: int | None = None  # None: the vectors' calibrated y' budget
    max_tokens: int | None = None  # None: the model's context length
    batch_size: int = 16
    seed: int = 0
    temperature: float = 0.0
    cache_dir: str | None = ".persona-lint-cache"
    skip_invalid: bool = False
    max_samples: int | None = None
    split: str = "train"
    fail_on: str = "error"
    dataset_fpr: float = 0.05  # family-wise rate of dataset verdicts (Holm over files x traits)
    fdr: float = 0.05  # false discovery rate of sample verdicts (Benjamini-Hochberg)
    device: str = "auto"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None  # vLLM's share of the GPU; None: the backend's default
    shard: str | None = None  # "i/N": screen only samples whose global index % N == i - 1
    chunk_size: int = 8192  # samples generated and scored together (vLLM gets one call per chunk)
    rule_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def resolve_device(choice: str) -> str:
    if choice != "auto":
        return choice
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def screen(
    sources: Sequence[str],
    options: ScreenOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    loaded_model: LoadedModel | None = None,
    **overrides: Any,
) -> ScreenResult:
    """Screen datasets and return every score and finding; the CLI prints exactly this.

    The samples stream through generation and scoring ``options.chunk_size`` at a time, and each
    chunk's per-sample results go to a spool on disk (``result.samples``), so the memory a run
    holds does not grow with the dataset beyond a few numbers per sample.

    ``loaded_model`` reuses a model loaded with :func:`datalint_persona.model.loading.load_model` across
    calls (it must be the one ``options.model`` names); otherwise the model is loaded here.

    >>> result = screen(["train.jsonl"], fail_on="warning")  # doctest: +SKIP
    >>> [f.location for f in result.findings]  # doctest: +SKIP
    """
    from datalint_persona.dataset.input_check import SampleTally, check_unchanged
    from datalint_persona.dataset.loaders import iter_dataset, scan_dataset
    from datalint_persona.model.backends import GenerationSettings, make_backend
    from datalint_persona.model.chat import fit_prompt
    from datalint_persona.model.loading import describe, load_model, resolve_model
    from datalint_persona.persona.store import find_vectors
    from datalint_persona.screening.cache_identity import cache_identity
    from datalint_persona.screening.generation import calibrated_generation, generate_y_prime
    from datalint_persona.screening.projection_cache import ProjectionCache
    from datalint_persona.screening.scoring import ScoringStats, project_responses
    from datalint_persona.screening.sharding import parse_shard, shard_settings
    from datalint_persona.screening.spool import SampleSpool
    from datalint_persona.verdicts.decide import annotate, decide
    from datalint_persona.verdicts.rules import default_rule_for, resolve_rule, shipped_rules

    opts = ScreenOptions(**{**asdict(options or ScreenOptions()), **overrides})
    started = _now()
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

    def all_samples() -> Iterator[Sample]:
        records = iter_dataset(
            sources, skip_invalid=opts.skip_invalid, split=opts.split, max_samples=opts.max_samples
        )
        return (item for item in records if isinstance(item, Sample))

    # A shard scores its share of the samples; shard 1 alone reports the invalid records.
    invalid = scan.invalid if shard is None or shard.index == 1 else []
    n_owned = sum(1 for g in range(scan.n_samples) if shard is None or shard.owns(g))
    if loaded_model is not None:
        loaded = loaded_model
    else:
        if progress:
            progress("load-model", 0, 1)
        loaded = load_model(spec, device=resolve_device(opts.device))
        if progress:
            progress("load-model", 1, 1)
    defaults = shipped_rules()
    all_rules: list[RuleInfo] = []
    for vector in vectors:
        vector.check_model(loaded.identity, loaded.num_layers, loaded.hidden_size, spec.name)
        rule = resolve_rule(
            defaults.get(vector.trait) or default_rule_for(vector.trait),
            vector,
            opts.rule_overrides.get(vector.trait, {}),
        )
        all_rules.append(rule)
    rules = [r for r in all_rules if r.enabled]
    if not rules:
        raise PersonaLintError("Every rule is disabled.", fix="enable at least one rule in the config.")
    by_trait = {v.trait: v for v in vectors}
    directions = [Direction(r.trait, r.layer, by_trait[r.trait].unit(r.layer)) for r in rules]
    max_tokens = opts.max_tokens or loaded.context_length
    # One y' policy for calibration and screening: a sample's ΔP never depends on the rest of the run.
    calibrated = calibrated_generation(vectors)
    max_new = opts.max_new_tokens or calibrated.max_new_tokens
    settings = GenerationSettings(max_new_tokens=max_new, temperature=opts.temperature, seed=opts.seed)
    # One cut for generation and scoring: a long prompt loses its oldest tokens so that it and y'
    # fit, and y' is scored under the very prompt it was generated from.
    prompt_budget = _prompt_budget(max_tokens, loaded.context_length, max_new)
    generation_budget = loaded.context_length - max_new
    n_prompts_cut = 0
    # y' projections recorded while generating spare scoring a second pass over y'.
    backend = make_backend(
        opts.backend,
        loaded,
        tensor_parallel_size=opts.tensor_parallel_size,
        gpu_memory_utilization=opts.gpu_memory_utilization,
        record_directions=directions,
    )
    spool = SampleSpool()
    generation_stats = {"hits": 0, "misses": 0, "corrupted": 0}
    cache_warnings: list[str] = []
    scoring_stats = ScoringStats()
    stages = _RunProgress(progress, {"generate": n_owned, "score": 2 * n_owned})
    projection_cache = ProjectionCache(
        opts.cache_dir, scope=cache_identity(loaded) if opts.cache_dir is not None else ""
    )
    try:
        second_read = SampleTally()
        for chunk in _owned_chunks(all_samples(), shard, opts.chunk_size, second_read):
            samples = [sample for _, sample in chunk]
            fitted = [
                fit_prompt(loaded.tokenizer, s.prompt, prompt_budget, fallback=generation_budget)
                for s in samples
            ]
            prompts = [prompt for prompt, _ in fitted]
            n_prompts_cut += sum(cut for _, cut in fitted)
            generations, cache = generate_y_prime(
                loaded,
                prompts,
                settings,
                backend=backend,
                cache_dir=opts.cache_dir,
                batch_size=opts.batch_size,
                progress=stages.chunk("generate", len(chunk)),
            )
            for key in generation_stats:
                generation_stats[key] += getattr(cache.stats, key)
            cache_warnings += cache.warnings
            projections, truncated_flags = project_responses(
                loaded,
                [*prompts, *prompts],
                [*(s.response for s in samples), *(g.text for g in generations)],
                directions,
                max_tokens=max_tokens,
                batch_size=opts.batch_size,
                cache=projection_cache,
                recorded=[*(None for _ in samples), *(g.recorded for g in generations)],
                stats=scoring_stats,
                progress=stages.chunk("score", 2 * len(chunk)),
            )
            n = len(samples)
            scores = [
                _sample_score(
                    index,
                    sample,
                    generations[i].text,
                    generations[i].hit_token_limit,
                    truncated_flags[i],
                    projections[i],
                    projections[n + i],
                    rules,
                )
                for i, (index, sample) in enumerate(chunk)
            ]
            spool.extend(scores)
        check_unchanged(sources, scan, second_read)
    finally:
        projection_cache.close()
    verdicts = decide(spool, rules, fdr=opts.fdr, dataset_alpha=opts.dataset_fpr, seed=opts.seed)
    annotated = SampleSpool()
    annotated.extend(annotate(spool, rules, verdicts))
    findings = [
        *invalid_findings(invalid),
        *dataset_findings(verdicts.summaries, rules),
        *sample_findings(annotated, rules, verdicts.flagged, opts.fdr),
    ]
    warnings = [*dict.fromkeys(cache_warnings), *projection_cache.warnings]
    warnings += calibrated.mismatch_warnings(settings)
    if scan.stopped_after is not None:
        warnings.append(
            f"--max-samples {opts.max_samples}: stopped reading after {scan.stopped_after}; "
            "the records after it were not screened."
        )
    if invalid:
        warnings.append(f"{len(invalid)} invalid record(s) were skipped (--skip-invalid); see the findings.")
    if n_prompts_cut:
        warnings.append(
            f"{n_prompts_cut} prompt(s) were longer than the {prompt_budget} tokens left beside y' "
            f"(the model's context and --max-tokens {max_tokens}, less --max-new-tokens {max_new}); their "
            "oldest text was cut, and y and y' were scored under the cut prompt that y' was generated from."
        )
    warnings += count_warnings(annotated, max_tokens, max_new)
    run_settings: dict[str, object] = {
        "backend": opts.backend,
        "max_new_tokens": max_new,
        "max_tokens": max_tokens,
        "batch_size": opts.batch_size,
        "seed": opts.seed,
        "temperature": opts.temperature,
        "fail_on": opts.fail_on,
        "dataset_fpr": opts.dataset_fpr,
        "fdr": opts.fdr,
    }
    if shard is not None:
        run_settings["shard"] = shard_settings(shard, scan.sizes)
    return ScreenResult(
        tool_version=__version__,
        model=describe(loaded),
        settings=run_settings,
        vectors=tuple(
            {
                "trait": v.trait,
                "file": display_path(v.path or f"{v.trait}.safetensors"),
                "sha256": v.metadata["tensor_sha256"],
                "model_identity": v.model_identity,
                "method": v.metadata.get("method", "unknown"),
            }
            for v in vectors
        ),
        rules=tuple(all_rules),
        sources=tuple(dict.fromkeys([*scan.sizes, *(r.source for r in invalid)])),
        samples=annotated,
        summaries=verdicts.summaries,
        findings=tuple(findings),
        invalid=tuple(invalid),
        started_at=started,
        finished_at=_now(),
        warnings=tuple(warnings),
        cache_stats={**generation_stats, **scoring_stats.as_dict()},
        calibration=_calibration_values(rules, by_trait),
        inputs=scan.inputs,
    )


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


def _sample_score(
    index: int,
    sample: Sample,
    y_prime: str,
    hit_limit: bool,
    truncated: bool,
    projection_y: np.ndarray,
    projection_y_prime: np.ndarray,
    rules: Sequence[RuleInfo],
) -> SampleScore:
    trait_scores = []
    for column, rule in enumerate(rules):
        reference = Reference(rule.reference_weight, rule.reference_mean)
        delta = float(reference.delta_p(projection_y[column], projection_y_prime[column]))
        z = None
        if rule.calibration_mean is not None and rule.calibration_std:
            z = (delta - rule.calibration_mean) / rule.calibration_std
        trait_scores.append(
            TraitScore(
                rule.trait,
                rule.layer,
                float(projection_y[column]),
                float(projection_y_prime[column]),
                delta,
                z,
            )
        )
    return SampleScore(sample, index, y_prime, hit_limit, truncated, tuple(trait_scores))
