"""The end of a screening run: verdicts over all its scores, and the :class:`ScreenResult`
(findings, warnings, the settings and vectors a report records)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datalint_persona import __version__
from datalint_persona.paths import display_path
from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult, VectorInfo
from datalint_persona.screening.run_plan import RunPlan
from datalint_persona.types import InvalidRecord, RuleInfo
from datalint_persona.verdicts.findings import dataset_findings, invalid_findings, sample_findings
from datalint_persona.verdicts.summaries import count_warnings

if TYPE_CHECKING:
    from datalint_persona.dataset.loaders import DatasetScan
    from datalint_persona.persona.vectors import PersonaVector
    from datalint_persona.screening.scoring import ScoringStats
    from datalint_persona.screening.sharding import Shard
    from datalint_persona.screening.spool import SampleSpool

__all__ = ["Scored", "build_result", "now"]


def now() -> str:
    """The time now, as reports record it (UTC, to the second)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass
class Scored:
    """What the chunk loop gathers over the run: the scores, and what the caches and cuts did."""

    spool: SampleSpool
    scoring: ScoringStats
    generation_stats: dict[str, int]
    cache_warnings: list[str]
    prompts_cut: int = 0
    model_loaded: bool = True  # False: every chunk came from the caches alone


def build_result(
    plan: RunPlan,
    model: ModelInfo,
    scan: DatasetScan,
    shard: Shard | None,
    scored: Scored,
    projection_warnings: Sequence[str],
    started: str,
) -> ScreenResult:
    """Decide the verdicts over the whole run and gather everything the reporters print."""
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
    warnings += count_warnings(annotated, plan.max_tokens, plan.generation.max_new_tokens)
    return ScreenResult(
        tool_version=__version__,
        model=model,
        settings=_run_settings(plan, scan, shard),
        vectors=tuple(_vector_record(v) for v in plan.vectors),
        rules=plan.all_rules,
        sources=tuple(dict.fromkeys([*scan.sizes, *(r.source for r in invalid)])),
        samples=annotated,
        summaries=verdicts.summaries,
        findings=tuple(findings),
        invalid=tuple(invalid),
        started_at=started,
        finished_at=now(),
        warnings=tuple(warnings),
        cache_stats={
            **scored.generation_stats,
            **scored.scoring.as_dict(),
            "model_loaded": int(scored.model_loaded),
        },
        calibration=_calibration_values(rules, {v.trait: v for v in plan.vectors}),
        inputs=scan.inputs,
    )


def _run_warnings(
    plan: RunPlan, scan: DatasetScan, invalid: Sequence[InvalidRecord], prompts_cut: int
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
            f"(the model's context and the sample budget of {plan.max_tokens} (--max-sample-tokens, "
            f"--max-tokens), less --max-new-tokens "
            f"{plan.generation.max_new_tokens}); their oldest text was cut, and y and y' were scored under the cut "
            "prompt that y' was generated from."
        )
    return warnings


def _run_settings(plan: RunPlan, scan: DatasetScan, shard: Shard | None) -> RunSettings:
    """The settings a report records (those that change its numbers)."""
    from datalint_persona.screening.sharding import shard_settings

    opts = plan.options
    return RunSettings(
        backend=opts.backend,
        max_new_tokens=plan.generation.max_new_tokens,
        max_tokens=plan.max_tokens,
        batch_size=opts.batch_size,
        seed=opts.seed,
        temperature=opts.temperature,
        fail_on=opts.fail_on,
        dataset_fpr=opts.dataset_fpr,
        fdr=opts.fdr,
        dtype=opts.dtype,
        shard=None if shard is None else shard_settings(shard, scan.sizes),
    )


def _vector_record(vector: PersonaVector) -> VectorInfo:
    """What a report records about a vector."""
    return VectorInfo(
        trait=vector.trait,
        file=display_path(vector.path or f"{vector.trait}.safetensors"),
        sha256=vector.tensor_sha256,
        model_identity=vector.model_identity,
        method=vector.method,
    )


def _calibration_values(
    rules: Sequence[RuleInfo], by_trait: Mapping[str, Any]
) -> dict[str, dict[str, tuple[float, ...]]]:
    """The calibration ΔP values (normal, trait) of each rule's vector, where stored at its layer."""
    values: dict[str, dict[str, tuple[float, ...]]] = {}
    for rule in rules:
        calibration = by_trait[rule.trait].calibration
        if calibration.layer != rule.layer:
            continue
        stored = {"normal": calibration.normal_delta_p, "trait": calibration.trait_delta_p}
        values[rule.trait] = {name: v for name, v in stored.items() if v}
    return values
