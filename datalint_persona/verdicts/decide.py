"""From per-sample ΔP to verdicts: which samples and which files a CI gate should stop.

The reference point is "no shift": ΔP = 0 means that the data says what the model already says
(the model's own answers score 0 on average, and exactly 0 at reference weight 1).

**Samples.** Each sample and trait gets a one-sided p-value: how likely an ordinary answer pulls
this far. It must be unusual against the clean null (ΔP of clean answers of many styles, fitted
as a Student t at calibration), against the model's own answers where the rule's reference does
not make their ΔP 0 (a second t, :mod:`datalint_persona.screening.reference`), *and*, in a file of at least
``MIN_OWN_FILE`` samples, an outlier in its own file (median and MAD), so that a file's own style
is not evidence; the largest of the p-values counts. Samples with ΔP <= 0 never pull toward the
trait (p = 1). The p-values of a run are corrected together (Benjamini-Hochberg), and a sample is
flagged at q <= ``fdr``.

**Files.** The effect is the mean ΔP as a fraction of the calibrated gap between trait and normal
answers. A file is flagged when a one-sided t test shows that the mean ΔP of its samples that were
not flagged one by one (so no sample counts twice) exceeds ``margin x gap``, after Holm's
correction over every file and trait of the run. Below ``MIN_DATASET_SAMPLES`` no verdict is given.

The engine and ``persona-lint merge`` share :func:`decide`.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from datalint_persona.stats import (
    CleanNull,
    benjamini_hochberg,
    bootstrap_mean_ci,
    holm,
    mean_above_p_value,
    robust_location_scale,
    two_sample_above_p_value,
)
from datalint_persona.types import DatasetSummary, RuleInfo, SampleScore

MIN_DATASET_SAMPLES = 20
MIN_OWN_FILE = 20
# A file's own scale is floored at this share of the clean null's, so a file of identical ΔP
# (the model's own answers: all 0) does not make every other value an outlier.
OWN_SCALE_FLOOR = 0.25
DEFAULT_FDR = 0.05
DEFAULT_DATASET_ALPHA = 0.05


@dataclass(frozen=True)
class Verdicts:
    """Everything :func:`decide` concluded; the per-sample arrays are (n_samples, n_rules), in
    the order the scores came in, columns in rule order."""

    summaries: tuple[DatasetSummary, ...]
    p_values: np.ndarray  # NaN where the rule has no clean null
    q_values: np.ndarray
    flagged: np.ndarray  # bool


def clean_null(rule: RuleInfo) -> CleanNull | None:
    """The rule's clean null, where its vector was calibrated with one."""
    if rule.null_df is None or rule.calibration_mean is None or not rule.calibration_std:
        return None
    return CleanNull(rule.null_df, rule.calibration_mean, rule.calibration_std)


def own_answer_null(rule: RuleInfo) -> CleanNull | None:
    """The t of the model's own answers' ΔP, where the rule's reference weight is below 1."""
    return CleanNull(*rule.own_answer_null) if rule.own_answer_null else None


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


def sample_p_values(
    delta: np.ndarray, sources: np.ndarray, null: CleanNull | None, own_null: CleanNull | None = None
) -> np.ndarray:
    """(n,) one-sided p-values of one trait's ΔP (see the module docstring); NaN without a null.

    ``sources`` holds each sample's file as an integer code; ``own_null`` is the null of the
    model's own answers, where there is one.
    """
    if null is None:
        return np.full(delta.shape, np.nan)
    from scipy.stats import norm

    p = np.asarray(null.p_value(delta), dtype=np.float64)
    if own_null is not None:
        p = np.maximum(p, own_null.p_value(delta))
    for code in np.unique(sources):
        rows = np.flatnonzero(sources == code)
        if rows.size < MIN_OWN_FILE:
            continue
        centre, scale = robust_location_scale(delta[rows])
        scale = max(scale, OWN_SCALE_FLOOR * null.scale)
        p[rows] = np.maximum(p[rows], norm.sf((delta[rows] - centre) / scale))
    p[delta <= 0] = 1.0
    return p


def decide(
    scores: Iterable[SampleScore],
    rules: Sequence[RuleInfo],
    *,
    fdr: float = DEFAULT_FDR,
    dataset_alpha: float = DEFAULT_DATASET_ALPHA,
    seed: int = 0,
    intervals: bool = True,
) -> Verdicts:
    """Sample and file verdicts of a whole run, in one pass over ``scores`` (a spool is read once).

    ``intervals=False`` skips the bootstrap intervals (NaN), which the verdicts do not use.

    >>> from datalint_persona.types import Sample, TraitScore
    >>> rule = RuleInfo("persona/evil", "evil", "E", "", "error", 3, None, None, "",
    ...                 calibration_mean=-1.0, calibration_std=1.0, null_df=30.0, gap=4.0, margin=0.25)
    >>> scores = [SampleScore(Sample("a.jsonl", i + 1, (), "y"), i, "y", False, False,
    ...                       (TraitScore("evil", 3, 0.0, 0.0, 0.0, None),)) for i in range(30)]
    >>> verdicts = decide(scores, [rule])  # the model's own answers: ΔP = 0 everywhere
    >>> bool(verdicts.flagged.any()), verdicts.summaries[0].status
    (False, 'ok')
    """
    source_codes: dict[str, int] = {}
    codes = array("q")
    columns = [array("d") for _ in rules]
    y_columns = [array("d") for _ in rules]
    y_prime_columns = [array("d") for _ in rules]
    for score in scores:
        codes.append(source_codes.setdefault(score.sample.source, len(source_codes)))
        for k, rule in enumerate(rules):
            value = score.for_trait(rule.trait)
            columns[k].append(value.delta_p)
            y_columns[k].append(value.projection_y)
            y_prime_columns[k].append(value.projection_y_prime)
    sources = np.asarray(codes, dtype=np.int64)
    n = sources.size
    delta = np.stack([np.asarray(c) for c in columns], axis=1) if rules else np.zeros((n, 0))
    p = (
        np.stack(
            [
                sample_p_values(delta[:, k], sources, clean_null(rule), own_answer_null(rule))
                for k, rule in enumerate(rules)
            ],
            axis=1,
        )
        if rules
        else np.zeros((n, 0))
    )
    by_fdr = np.array([rule.sample_threshold is None for rule in rules], dtype=bool)
    q = np.full(p.shape, np.nan)
    tested = by_fdr[None, :] & ~np.isnan(p)
    q[tested] = benjamini_hochberg(p[tested])
    flagged = np.zeros(p.shape, dtype=bool)
    flagged[tested] = (q[tested] <= fdr) & (delta[tested] > 0)
    for k, rule in enumerate(rules):
        if rule.sample_threshold is not None:
            flagged[:, k] = delta[:, k] > rule.sample_threshold
    summaries = _dataset_summaries(
        delta,
        sources,
        list(source_codes),
        rules,
        flagged,
        y_columns,
        y_prime_columns,
        dataset_alpha,
        seed,
        intervals,
    )
    return Verdicts(tuple(summaries), p, q, flagged)


def _dataset_summaries(
    delta: np.ndarray,
    sources: np.ndarray,
    names: Sequence[str],
    rules: Sequence[RuleInfo],
    flagged: np.ndarray,
    y_columns: Sequence[array[float]],
    y_prime_columns: Sequence[array[float]],
    dataset_alpha: float,
    seed: int,
    intervals: bool,
) -> list[DatasetSummary]:
    y_all = [np.asarray(c) for c in y_columns]
    y_prime_all = [np.asarray(c) for c in y_prime_columns]
    rows_of = [np.flatnonzero(sources == code) for code in range(len(names))]
    # The tests first, {(file, rule): (p, samples tested)}, so that Holm sees every one of them.
    tests: dict[tuple[int, int], tuple[float, int]] = {}
    for code, rows in enumerate(rows_of):
        for k, rule in enumerate(rules):
            bound = dataset_bound(rule)
            if bound is None or rows.size < MIN_DATASET_SAMPLES:
                continue
            rest = delta[rows[~flagged[rows, k]], k]
            tests[code, k] = (mean_above_p_value(rest, bound) if rest.size else 1.0, int(rest.size))
    adjusted = dict(zip(tests, holm([p for p, _ in tests.values()]).tolist(), strict=True))
    summaries = []
    for code, (source, rows) in enumerate(zip(names, rows_of, strict=True)):
        for k, rule in enumerate(rules):
            values = delta[rows, k]
            bound = dataset_bound(rule)
            p_value, n_tested = tests.get((code, k), (None, None))
            adjusted_p = adjusted.get((code, k))
            is_flagged = adjusted_p is not None and adjusted_p <= dataset_alpha
            if bound is None:
                status = "uncalibrated"
            elif p_value is None:
                status = "too-few-samples"
            else:
                status = "flagged" if is_flagged else "ok"
            low, high = bootstrap_mean_ci(values, seed=seed) if intervals else (float("nan"), float("nan"))
            mean = float(values.mean())
            gap = usable_gap(rule)
            summaries.append(
                DatasetSummary(
                    trait=rule.trait,
                    source=source,
                    n_samples=int(values.size),
                    mean_delta_p=mean,
                    ci_low=low,
                    ci_high=high,
                    mean_projection_y=float(y_all[k][rows].mean()),
                    mean_projection_y_prime=float(y_prime_all[k][rows].mean()),
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
            )
    return summaries


def annotate(
    scores: Iterable[SampleScore], rules: Sequence[RuleInfo], verdicts: Verdicts
) -> Iterator[SampleScore]:
    """``scores`` again (same order as given to :func:`decide`), each trait score with its p and q."""
    columns = {rule.trait: k for k, rule in enumerate(rules)}
    for row, score in enumerate(scores):
        traits = []
        for trait_score in score.scores:
            k = columns.get(trait_score.trait)
            if k is None or np.isnan(verdicts.p_values[row, k]):
                traits.append(trait_score)
                continue
            q = verdicts.q_values[row, k]
            traits.append(
                replace(
                    trait_score,
                    p_value=float(verdicts.p_values[row, k]),
                    q_value=None if np.isnan(q) else float(q),
                )
            )
        yield replace(score, scores=tuple(traits))


MIN_COMPARISON_SAMPLES = 10


@dataclass(frozen=True)
class ChangeComparison:
    """A pull request's changed samples of one file against its unchanged ones, for one trait.

    The file's own style is the reference: flagged when a one-sided Welch t test shows that the
    changed samples' mean ΔP exceeds the unchanged samples' by more than margin x gap, after Holm's
    correction over every file and trait compared.
    """

    trait: str
    source: str
    n_changed: int
    n_unchanged: int
    mean_changed: float
    mean_unchanged: float
    effect: float  # (mean_changed - mean_unchanged) / gap
    margin: float
    p_value: float
    adjusted_p: float
    flagged: bool


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
