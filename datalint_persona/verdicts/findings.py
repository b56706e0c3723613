"""Apply rules to scores: sample findings, dataset findings, invalid-record findings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from datalint_persona.run_records import ChangeComparison
from datalint_persona.text import one_line
from datalint_persona.types import DatasetSummary, Finding, InvalidRecord, RuleInfo, SampleScore, TraitScore
from datalint_persona.verdicts.rules import INVALID_RECORD_RULE

EXCERPT_CHARS = 400  # what the HTML report shows of y and y' (reports carry no other text of a sample)


def _known(**values: float | None) -> dict[str, float]:
    """The figures that are known, for a finding's ``extra``."""
    return {name: value for name, value in values.items() if value is not None}


def _dataset_finding(
    rule: RuleInfo,
    source: str,
    message: str,
    delta_p: float,
    threshold: float | None,
    extra: dict[str, float],
) -> Finding:
    """A finding about a whole file; it points at the file's first line."""
    return Finding(
        rule_id=rule.id,
        level=rule.level,
        kind="dataset",
        source=source,
        line=1,
        message=message,
        trait=rule.trait,
        delta_p=delta_p,
        threshold=threshold,
        extra=extra,
    )


def _z_text(z: float | None) -> str:
    return "" if z is None else f"z = {z:.2f} against clean answers, "


def _sample_reason(rule: RuleInfo, score: TraitScore, fdr: float) -> str:
    if rule.sample_threshold is not None:
        return f"exceeds the set threshold {rule.sample_threshold:.3f}"
    q = "" if score.q_value is None else f"q = {score.q_value:.2g} "
    return f"{_z_text(score.z)}{q}<= FDR {fdr:g}"


def sample_findings(
    scores: Iterable[SampleScore], rules: Sequence[RuleInfo], flagged: np.ndarray, fdr: float
) -> list[Finding]:
    """A finding for each flagged (sample, rule); ``flagged`` is (n_samples, n_rules) in the
    order of ``scores`` (see :func:`datalint_persona.verdicts.decide.decide`)."""
    findings: list[Finding] = []
    for row, score in enumerate(scores):
        for column, rule in enumerate(rules):
            if not flagged[row, column]:
                continue
            trait_score = score.for_trait(rule.trait)
            findings.append(
                Finding(
                    rule_id=rule.id,
                    level=rule.level,
                    kind="sample",
                    source=score.sample.source,
                    line=score.sample.line,
                    message=(
                        f"Sample pulls toward '{rule.trait}': ΔP = {trait_score.delta_p:.3f} "
                        f"({_sample_reason(rule, trait_score, fdr)}; layer {rule.layer})."
                    ),
                    trait=rule.trait,
                    delta_p=trait_score.delta_p,
                    threshold=rule.sample_threshold,
                    z=trait_score.z,
                    content_hash=score.sample.content_hash,
                    excerpt=one_line(score.sample.response, EXCERPT_CHARS),
                    y_prime_excerpt=one_line(score.y_prime, EXCERPT_CHARS),
                    extra={
                        name: value
                        for name, value in (
                            ("p_value", trait_score.p_value),
                            ("q_value", trait_score.q_value),
                        )
                        if value is not None
                    },
                )
            )
    return findings


def effect_text(summary: DatasetSummary) -> str:
    """E.g. ``0.42 of the way from normal to 'evil' answers [0.31, 0.55]`` (empty without a gap)."""
    if summary.effect is None:
        return ""
    return (
        f"{summary.effect:.2f} of the way from normal to '{summary.trait}' answers "
        f"[{summary.effect_low:.2f}, {summary.effect_high:.2f}]"
    )


def dataset_findings(summaries: Sequence[DatasetSummary], rules: Sequence[RuleInfo]) -> list[Finding]:
    by_trait = {rule.trait: rule for rule in rules}
    findings = []
    for summary in summaries:
        rule = by_trait[summary.trait]
        if not summary.flagged or summary.threshold is None:
            continue
        effect = effect_text(summary)
        bound = (
            f"the margin {summary.margin:.2f} of the way"
            if summary.margin is not None
            else f"the set threshold {summary.threshold:.3f}"
        )
        excluded = summary.n_samples - (summary.n_tested or 0)
        message = (
            f"Dataset pulls toward '{rule.trait}': "
            + (f"it moves the model {effect}; " if effect else "")
            + f"mean ΔP = {summary.mean_delta_p:.3f} (95% CI {summary.ci_low:.3f} to {summary.ci_high:.3f}, "
            f"n = {summary.n_samples}) clears {bound} (Holm-adjusted p = {summary.adjusted_p:.2g}"
            + (f"; the {excluded} samples flagged one by one are left out of this test" if excluded else "")
            + ")."
        )
        extra = _known(
            effect=summary.effect,
            margin=summary.margin,
            p_value=summary.p_value,
            adjusted_p=summary.adjusted_p,
        )
        findings.append(
            _dataset_finding(rule, summary.source, message, summary.mean_delta_p, summary.threshold, extra)
        )
    return findings


def change_findings(comparisons: Sequence[ChangeComparison], rules: Sequence[RuleInfo]) -> list[Finding]:
    """A dataset finding for each flagged changed-versus-unchanged comparison (``--changed-since``)."""
    by_trait = {rule.trait: rule for rule in rules}
    findings = []
    for item in comparisons:
        if not item.flagged:
            continue
        rule = by_trait[item.trait]
        message = (
            f"The {item.n_changed} changed samples pull toward '{rule.trait}' more than the file's "
            f"{item.n_unchanged} unchanged ones: mean ΔP {item.mean_changed:.3f} against "
            f"{item.mean_unchanged:.3f}, {item.effect:.2f} of the way from normal to '{rule.trait}' "
            f"answers, above the margin {item.margin:.2f} (Holm-adjusted p = {item.adjusted_p:.2g})."
        )
        extra = _known(effect=item.effect, margin=item.margin, adjusted_p=item.adjusted_p)
        difference = item.mean_changed - item.mean_unchanged
        findings.append(_dataset_finding(rule, item.source, message, difference, None, extra))
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
