"""Dataset verdicts: whether a file's mean ΔP, or a pull request's changed samples, show a shift.

The effect is the mean ΔP as a fraction of the calibrated gap between trait and normal answers. A
file is flagged when a one-sided t test shows that the mean ΔP of its samples that were not flagged
one by one (so no sample counts twice) exceeds ``margin x gap``, after Holm's correction over every
file and trait of the run. Below ``MIN_DATASET_SAMPLES`` no verdict is given. A pull request's
changed samples are held against the file's unchanged ones (:func:`compare_changes`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from datalint_persona.run_records import ChangeComparison
from datalint_persona.stats import bootstrap_mean_ci, holm, mean_above_p_value, two_sample_above_p_value
from datalint_persona.types import DatasetSummary, RuleInfo, SampleScore
from datalint_persona.verdicts.samples import ScoreColumns

__all__ = [
    "DEFAULT_DATASET_ALPHA",
    "MIN_COMPARISON_SAMPLES",
    "MIN_DATASET_SAMPLES",
    "ChangeComparison",
    "compare_changes",
    "dataset_bound",
    "dataset_summaries",
    "margin_bound",
    "usable_gap",
]

MIN_DATASET_SAMPLES = 20
MIN_COMPARISON_SAMPLES = 10
DEFAULT_DATASET_ALPHA = 0.05


def usable_gap(rule: RuleInfo) -> float | None:
    """The rule's trait-vs-normal gap, where calibration gave a positive one (the unit of effects)."""
    return rule.gap if rule.gap is not None and rule.gap > 0 else None


def margin_bound(rule: RuleInfo) -> float | None:
    """The margin in ΔP units (margin x gap), where both are calibrated."""
    gap = usable_gap(rule)
    return None if gap is None or rule.margin is None else rule.margin * gap


def dataset_bound(rule: RuleInfo) -> float | None:
    """The mean ΔP a file must be shown to exceed: a set threshold, else margin x gap."""
    return rule.dataset_threshold if rule.dataset_threshold is not None else margin_bound(rule)


def dataset_summaries(
    columns: ScoreColumns,
    rules: Sequence[RuleInfo],
    flagged: np.ndarray,
    *,
    dataset_alpha: float,
    seed: int,
    intervals: bool,
) -> list[DatasetSummary]:
    """One summary per file and rule (files in order of appearance), with its Holm-corrected test.

    ``flagged`` is the (n_samples, n_rules) sample verdicts; ``intervals=False`` leaves the
    bootstrap intervals NaN.
    """
    rows_of = [np.flatnonzero(columns.sources == code) for code in range(len(columns.names))]
    tests = _file_tests(columns.delta, rows_of, rules, flagged)
    # Holm sees every test of the run at once.
    adjusted = dict(zip(tests, holm([p for p, _ in tests.values()]).tolist(), strict=True))
    summaries = []
    for code, rows in enumerate(rows_of):
        for k, rule in enumerate(rules):
            p_value, n_tested = tests.get((code, k), (None, None))
            adjusted_p = adjusted.get((code, k))
            values = columns.delta[rows, k]
            low, high = bootstrap_mean_ci(values, seed=seed) if intervals else (float("nan"), float("nan"))
            summaries.append(
                _summary(
                    rule,
                    columns.names[code],
                    values,
                    (low, high),
                    (
                        float(columns.projection_y[rows, k].mean()),
                        float(columns.projection_y_prime[rows, k].mean()),
                    ),
                    (p_value, n_tested, adjusted_p),
                    dataset_alpha,
                )
            )
    return summaries


def _file_tests(
    delta: np.ndarray, rows_of: Sequence[np.ndarray], rules: Sequence[RuleInfo], flagged: np.ndarray
) -> dict[tuple[int, int], tuple[float, int]]:
    """{(file code, rule index): (p, samples tested)} for every file big enough and rule with a bound.

    Only the samples not flagged one by one are tested, so that no sample counts twice.
    """
    tests: dict[tuple[int, int], tuple[float, int]] = {}
    for code, rows in enumerate(rows_of):
        for k, rule in enumerate(rules):
            bound = dataset_bound(rule)
            if bound is None or rows.size < MIN_DATASET_SAMPLES:
                continue
            rest = delta[rows[~flagged[rows, k]], k]
            tests[code, k] = (mean_above_p_value(rest, bound) if rest.size else 1.0, int(rest.size))
    return tests


def _summary(
    rule: RuleInfo,
    source: str,
    values: np.ndarray,
    interval: tuple[float, float],
    projections: tuple[float, float],
    test: tuple[float | None, int | None, float | None],
    dataset_alpha: float,
) -> DatasetSummary:
    """One file's summary for one rule: its mean ΔP and interval, effect, test and status."""
    p_value, n_tested, adjusted_p = test
    bound = dataset_bound(rule)
    is_flagged = adjusted_p is not None and adjusted_p <= dataset_alpha
    if bound is None:
        status = "uncalibrated"
    elif p_value is None:
        status = "too-few-samples"
    else:
        status = "flagged" if is_flagged else "ok"
    low, high = interval
    mean = float(values.mean())
    gap = usable_gap(rule)
    return DatasetSummary(
        trait=rule.trait,
        source=source,
        n_samples=int(values.size),
        mean_delta_p=mean,
        ci_low=low,
        ci_high=high,
        mean_projection_y=projections[0],
        mean_projection_y_prime=projections[1],
        threshold=bound,
        flagged=is_flagged,
        effect=None if gap is None else mean / gap,
        effect_low=None if gap is None else low / gap,
        effect_high=None if gap is None else high / gap,
        margin=rule.margin if rule.dataset_threshold is None else None,
        n_tested=n_tested,
        p_value=p_value,
        adjusted_p=adjusted_p,
        status=status,
    )


def compare_changes(
    scores: Iterable[SampleScore],
    rules: Sequence[RuleInfo],
    is_changed: Callable[[str, int], bool],
    *,
    dataset_alpha: float = DEFAULT_DATASET_ALPHA,
) -> list[ChangeComparison]:
    """Compare each file's changed and unchanged samples (both at least ``MIN_COMPARISON_SAMPLES``)."""
    groups: dict[str, tuple[list[list[float]], list[list[float]]]] = {}
    for score in scores:
        changed, unchanged = groups.setdefault(score.sample.source, ([], []))
        row = [score.for_trait(rule.trait).delta_p for rule in rules]
        (changed if is_changed(score.sample.source, score.sample.line) else unchanged).append(row)
    raw = []
    for source, (changed, unchanged) in groups.items():
        if min(len(changed), len(unchanged)) < MIN_COMPARISON_SAMPLES:
            continue
        new, old = np.asarray(changed), np.asarray(unchanged)
        for k, rule in enumerate(rules):
            bound, gap = margin_bound(rule), usable_gap(rule)
            if bound is None or gap is None:
                continue
            p = two_sample_above_p_value(new[:, k], old[:, k], bound)
            difference = float(new[:, k].mean() - old[:, k].mean())
            raw.append((rule, source, new[:, k], old[:, k], difference / gap, p))
    adjusted = holm([entry[5] for entry in raw]) if raw else np.zeros(0)
    return [
        ChangeComparison(
            trait=rule.trait,
            source=source,
            n_changed=int(new.size),
            n_unchanged=int(old.size),
            mean_changed=float(new.mean()),
            mean_unchanged=float(old.mean()),
            effect=effect,
            margin=float(rule.margin or 0.0),
            p_value=p,
            adjusted_p=float(a),
            flagged=bool(a <= dataset_alpha),
        )
        for (rule, source, new, old, effect, p), a in zip(raw, adjusted, strict=True)
    ]
