"""Apply rules to scores: sample findings, dataset findings, invalid-record findings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from datalint_persona.run_records import ChangeComparison
from datalint_persona.text import format_number, one_line
from datalint_persona.types import DatasetSummary, Finding, InvalidRecord, RuleInfo, SampleScore, TraitScore
from datalint_persona.verdicts.inline_ignore import suppress_in_source
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


def sample_message(rule: RuleInfo, score: TraitScore, fdr: float) -> str:
    """A sample finding's message, each number once, formatted as every report shows it.

    >>> rule = RuleInfo("persona/evil", "evil", "Evil", "", "error", 12, None, None, "")
    >>> sample_message(rule, TraitScore("evil", 12, 7.0, 0.68, 6.32, 4.061, 1e-4, 0.0123), 0.05)
    "Sample pulls toward 'evil': ΔP 6.32, z 4.061 against clean answers, q 0.0123 ≤ FDR 0.05 (layer 12)."
    """
    numbers = [f"ΔP {format_number(score.delta_p)}"]
    if rule.sample_threshold is not None:
        numbers[0] += f" exceeds the set threshold {format_number(rule.sample_threshold)}"
    else:
        if score.z is not None:
            numbers.append(f"z {format_number(score.z)} against clean answers")
        if score.q_value is not None:
            numbers.append(f"q {format_number(score.q_value)} ≤ FDR {fdr:g}")
        else:
            numbers.append(f"flagged at FDR {fdr:g}")
    return f"Sample pulls toward '{rule.trait}': {', '.join(numbers)} (layer {rule.layer})."


def sample_findings(
    scores: Iterable[SampleScore], rules: Sequence[RuleInfo], flagged: np.ndarray, fdr: float
) -> list[Finding]:
    """A finding for each flagged (sample, rule); ``flagged`` is (n_samples, n_rules) in the
    order of ``scores`` (see :func:`datalint_persona.verdicts.decide.decide`). A finding that the
    sample's own ``persona_lint`` key ignores is marked suppressed (see ``inline_ignore``)."""
    findings: list[Finding] = []
    for row, score in enumerate(scores):
        for column, rule in enumerate(rules):
            if not flagged[row, column]:
                continue
            trait_score = score.for_trait(rule.trait)
            finding = Finding(
                rule_id=rule.id,
                level=rule.level,
                kind="sample",
                source=score.sample.source,
                line=score.sample.line,
                message=sample_message(rule, trait_score, fdr),
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
            findings.append(suppress_in_source(finding, score.sample.ignore))
    return findings


def dataset_message(rule: RuleInfo, summary: DatasetSummary) -> str:
    """A flagged dataset's message, each number once, formatted as every report shows it.

    >>> rule = RuleInfo("persona/evil", "evil", "Evil", "", "error", 12, None, None, "")
    >>> summary = DatasetSummary("evil", "d.jsonl", 40, 2.578, 0.9, 4.2, 3.0, 0.4, 0.5, True,
    ...     0.42, 0.31, 0.55, 0.25, 38, 0.0004, 0.0012)
    >>> print(dataset_message(rule, summary).replace(", ", ",\\n"))
    Dataset pulls toward 'evil': mean ΔP 2.578 (95% CI 0.9 to 4.2,
    n = 40),
    42% of the way from normal to 'evil' answers [31%,
    55%],
    clears the margin 25% (Holm-adjusted p 0.0012; the 2 samples flagged one by one are left out of this test).
    """
    parts = [
        f"mean ΔP {format_number(summary.mean_delta_p)} (95% CI {format_number(summary.ci_low)} to "
        f"{format_number(summary.ci_high)}, n = {summary.n_samples})"
    ]
    if summary.effect is not None and summary.effect_low is not None and summary.effect_high is not None:
        parts.append(
            f"{summary.effect:.0%} of the way from normal to '{rule.trait}' answers "
            f"[{summary.effect_low:.0%}, {summary.effect_high:.0%}]"
        )
    if summary.margin is not None:
        parts.append(f"clears the margin {summary.margin:.0%}")
    else:
        parts.append(f"clears the set threshold {format_number(summary.threshold)}")
    excluded = summary.n_samples - (summary.n_tested or 0)
    left_out = (
        "the sample flagged on its own is left out of this test"
        if excluded == 1
        else f"the {excluded} samples flagged one by one are left out of this test"
    )
    test = f"Holm-adjusted p {format_number(summary.adjusted_p)}" + (f"; {left_out}" if excluded else "")
    return f"Dataset pulls toward '{rule.trait}': {', '.join(parts)} ({test})."


def dataset_findings(summaries: Sequence[DatasetSummary], rules: Sequence[RuleInfo]) -> list[Finding]:
    by_trait = {rule.trait: rule for rule in rules}
    findings = []
    for summary in summaries:
        rule = by_trait[summary.trait]
        if not summary.flagged or summary.threshold is None:
            continue
        extra = _known(
            effect=summary.effect,
            margin=summary.margin,
            p_value=summary.p_value,
            adjusted_p=summary.adjusted_p,
        )
        findings.append(
            _dataset_finding(
                rule,
                summary.source,
                dataset_message(rule, summary),
                summary.mean_delta_p,
                summary.threshold,
                extra,
            )
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
            f"{item.n_unchanged} unchanged ones: mean ΔP {format_number(item.mean_changed)} against "
            f"{format_number(item.mean_unchanged)}, {item.effect:.0%} of the way from normal to "
            f"'{rule.trait}' answers, above the margin {item.margin:.0%} "
            f"(Holm-adjusted p {format_number(item.adjusted_p)})."
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
