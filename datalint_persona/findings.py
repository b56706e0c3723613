"""Apply rules to scores: sample findings, dataset findings, invalid-record findings."""

from __future__ import annotations

from collections.abc import Sequence

from datalint_persona.rules import INVALID_RECORD_RULE
from datalint_persona.text import one_line
from datalint_persona.types import DatasetSummary, Finding, InvalidRecord, RuleInfo, SampleScore

EXCERPT_CHARS = 160


def _z_text(z: float | None) -> str:
    return "" if z is None else f", z = {z:.2f}"


def sample_findings(scores: Sequence[SampleScore], rules: Sequence[RuleInfo]) -> list[Finding]:
    findings: list[Finding] = []
    for score in scores:
        for rule in rules:
            trait_score = score.for_trait(rule.trait)
            if trait_score.delta_p <= rule.sample_threshold:
                continue
            findings.append(
                Finding(
                    rule_id=rule.id,
                    level=rule.level,
                    kind="sample",
                    source=score.sample.source,
                    line=score.sample.line,
                    message=(
                        f"Sample pulls toward '{rule.trait}': ΔP = {trait_score.delta_p:.3f} exceeds "
                        f"the sample threshold {rule.sample_threshold:.3f}{_z_text(trait_score.z)} "
                        f"(layer {rule.layer})."
                    ),
                    trait=rule.trait,
                    delta_p=trait_score.delta_p,
                    threshold=rule.sample_threshold,
                    z=trait_score.z,
                    content_hash=score.sample.content_hash,
                    excerpt=one_line(score.sample.response, EXCERPT_CHARS),
                    y_prime_excerpt=one_line(score.y_prime, EXCERPT_CHARS),
                )
            )
    return findings


def dataset_findings(summaries: Sequence[DatasetSummary], rules: Sequence[RuleInfo]) -> list[Finding]:
    by_trait = {rule.trait: rule for rule in rules}
    findings = []
    for summary in summaries:
        rule = by_trait[summary.trait]
        if not summary.flagged or summary.threshold is None:
            continue
        findings.append(
            Finding(
                rule_id=rule.id,
                level=rule.level,
                kind="dataset",
                source=summary.source,
                line=1,
                message=(
                    f"Dataset pulls toward '{rule.trait}': mean ΔP = {summary.mean_delta_p:.3f} "
                    f"(95% CI {summary.ci_low:.3f} to {summary.ci_high:.3f}, n = {summary.n_samples}) "
                    f"exceeds the dataset threshold {summary.threshold:.3f}."
                ),
                trait=rule.trait,
                delta_p=summary.mean_delta_p,
                threshold=summary.threshold,
            )
        )
    return findings


def invalid_findings(invalid: Sequence[InvalidRecord]) -> list[Finding]:
    return [
        Finding(
            rule_id=INVALID_RECORD_RULE.id,
            level=INVALID_RECORD_RULE.level,
            kind="invalid",
            source=record.source,
            line=record.line,
            message=f"Invalid record: {record.problem}" + (f" Fix: {record.fix}" if record.fix else ""),
        )
        for record in invalid
    ]
