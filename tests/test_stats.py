"""Statistics against independent formulas and brute-force resampling."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datalint_persona.stats import (
    benjamini_hochberg,
    bootstrap_mean_ci,
    cohens_d,
    fit_clean_null,
    holm,
    mean_above_p_value,
    robust_location_scale,
    threshold_at_fpr,
    tpr_at_threshold,
    two_sample_above_p_value,
)


def test_bootstrap_ci_brackets_the_mean_and_matches_the_normal_interval() -> None:
    values = np.random.default_rng(1).normal(3.0, 2.0, size=400)
    low, high = bootstrap_mean_ci(values, seed=0)
    mean = float(values.mean())
    assert low < mean < high
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values))
    assert low == pytest.approx(mean - half, abs=0.25 * half)
    assert high == pytest.approx(mean + half, abs=0.25 * half)
    assert bootstrap_mean_ci(values, seed=0) == (low, high)  # deterministic for a seed
    narrow = bootstrap_mean_ci(values, confidence=0.5, seed=0)
    assert low < narrow[0] < narrow[1] < high


def test_bootstrap_ci_brute_force() -> None:
    values = np.array([0.1, 0.5, -0.3, 2.0, 1.2, 0.7, -1.1, 0.4])
    low, high = bootstrap_mean_ci(values, seed=3)
    rng = np.random.default_rng(123)
    means = rng.choice(values, size=(20000, values.size), replace=True).mean(axis=1)
    assert low == pytest.approx(np.quantile(means, 0.025), abs=0.06)
    assert high == pytest.approx(np.quantile(means, 0.975), abs=0.06)


@pytest.mark.parametrize("values, expected", [([2.5], (2.5, 2.5)), ([1.0, 1.0, 1.0], (1.0, 1.0))])
def test_bootstrap_ci_degenerate(values: list[float], expected: tuple[float, float]) -> None:
    assert bootstrap_mean_ci(values) == expected


def test_bootstrap_ci_empty_is_nan() -> None:
    assert all(math.isnan(x) for x in bootstrap_mean_ci([]))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=30),
    st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=30),
)
def test_cohens_d_against_the_textbook_formula(positive: list[float], negative: list[float]) -> None:
    n1, n2 = len(positive), len(negative)
    pooled = math.sqrt(
        ((n1 - 1) * statistics.variance(positive) + (n2 - 1) * statistics.variance(negative)) / (n1 + n2 - 2)
    )
    if pooled < 1e-9:
        return
    expected = (statistics.fmean(positive) - statistics.fmean(negative)) / pooled
    assert cohens_d(positive, negative) == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_cohens_d_known_value() -> None:
    assert cohens_d([2.0, 4.0], [0.0, 2.0]) == pytest.approx(math.sqrt(2))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=200),
    st.sampled_from([0.01, 0.05, 0.1, 0.25, 0.5]),
)
def test_threshold_at_fpr_keeps_the_false_positive_rate(negatives: list[float], fpr: float) -> None:
    threshold = threshold_at_fpr(negatives, fpr)
    scores = np.asarray(negatives)
    assert (scores > threshold).mean() <= fpr
    assert threshold in negatives  # an observed value ("higher" quantile)
    # The smallest such threshold: at the next lower observed value too many would be above.
    lower = scores[scores < threshold]
    if lower.size:
        assert (scores > lower.max()).mean() > fpr


def test_threshold_at_fpr_example() -> None:
    negatives = list(range(1, 21))  # 1..20
    threshold = threshold_at_fpr(negatives, 0.1)
    assert threshold == 18  # 19 and 20 are above: FPR 0.1 <= 0.1
    assert threshold_at_fpr(negatives, 0.05) == 19
    assert threshold_at_fpr(negatives, 0.0) == 20
    assert threshold_at_fpr([3.0, 1.0, 2.0], 0.5) == 2  # input order does not matter
    assert tpr_at_threshold([18.0, 19.5, 25.0], threshold) == pytest.approx(2 / 3)
    assert math.isnan(tpr_at_threshold([], threshold))


def _bh_by_definition(p: np.ndarray) -> np.ndarray:
    """q_i = min over j with p_j >= p_i of m p_j / rank_j (the step-up definition), by brute force."""
    m = p.size
    ranks = np.array([(p <= value).sum() for value in p])
    return np.array([min(1.0, min(m * p[j] / ranks[j] for j in range(m) if p[j] >= p[i])) for i in range(m)])


def _holm_by_definition(p: np.ndarray) -> np.ndarray:
    """Holm: adjusted p_(i) = max over j <= i of (m - j + 1) p_(j), capped at 1, by brute force."""
    m = p.size
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = np.empty(m)
    for position, index in enumerate(order):
        adjusted[index] = min(1.0, max((m - j) * p[order[j]] for j in range(position + 1)))
    return adjusted


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40))
def test_benjamini_hochberg_and_holm_against_their_definitions(values: list[float]) -> None:
    from scipy.stats import false_discovery_control

    p = np.array(values)
    assert benjamini_hochberg(p) == pytest.approx(_bh_by_definition(p), abs=1e-12)
    assert benjamini_hochberg(p) == pytest.approx(false_discovery_control(p), abs=1e-12)
    assert holm(p) == pytest.approx(_holm_by_definition(p), abs=1e-12)
    # Holm controls the family-wise rate, so it is never less strict than BH.
    assert np.all(holm(p) >= benjamini_hochberg(p) - 1e-12)


def test_benjamini_hochberg_keeps_the_shape_and_controls_the_fdr() -> None:
    rng = np.random.default_rng(4)
    assert benjamini_hochberg(np.full((3, 2), 0.5)).shape == (3, 2)
    false_share = []
    for _ in range(200):
        null = rng.uniform(size=900)
        signal = rng.uniform(size=100) * 1e-4
        q = benjamini_hochberg(np.concatenate([null, signal]))
        found = q <= 0.05
        false_share.append(found[:900].sum() / max(found.sum(), 1))
    assert np.mean(false_share) <= 0.05


def test_clean_null_fit_recovers_a_student_t_and_its_tail() -> None:
    from scipy.stats import t

    data = t.rvs(5, loc=-2.0, scale=1.5, size=5000, random_state=np.random.default_rng(3))
    null = fit_clean_null(data)
    assert null.df == pytest.approx(5, rel=0.35)
    assert null.loc == pytest.approx(-2.0, abs=0.1)
    assert null.scale == pytest.approx(1.5, rel=0.08)
    fresh = t.rvs(5, loc=-2.0, scale=1.5, size=20000, random_state=np.random.default_rng(8))
    for alpha in (0.05, 0.01):
        # held-out draws of the same distribution fall below p = alpha at rate alpha
        assert (null.p_value(fresh) < alpha).mean() == pytest.approx(alpha, rel=0.2)
    assert null.z(1.0) == pytest.approx((1.0 - null.loc) / null.scale)
    with pytest.raises(ValueError, match="at least 10"):
        fit_clean_null([1.0, 2.0])


def test_robust_location_scale_against_numpy() -> None:
    values = np.random.default_rng(5).normal(3.0, 2.0, size=4001)
    centre, scale = robust_location_scale(values)
    assert centre == float(np.median(values))
    assert scale == pytest.approx(1.482602218505602 * float(np.median(np.abs(values - np.median(values)))))
    assert scale == pytest.approx(2.0, rel=0.05)


def test_one_sided_t_tests_against_the_formula() -> None:
    from scipy.stats import t

    values = np.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 1.1, 0.2])
    statistic = (values.mean() - 0.5) / (values.std(ddof=1) / math.sqrt(values.size))
    assert mean_above_p_value(values, 0.5) == pytest.approx(t.sf(statistic, values.size - 1))
    assert mean_above_p_value([2.0], 1.0) == 0.0
    assert mean_above_p_value([1.0, 1.0], 1.0) == 1.0
    a, b = values, np.array([0.1, -0.3, 0.5, 0.2, 0.0])
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    welch = (a.mean() - b.mean() - 0.3) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    assert two_sample_above_p_value(a, b, 0.3) == pytest.approx(t.sf(welch, dof))
    assert two_sample_above_p_value([1.0], b, 0.0) == 1.0


def test_cohens_d_without_spread_keeps_the_sign() -> None:
    assert cohens_d([1.0, 1.0], [1.0, 1.0]) == 0.0
    assert cohens_d([0.0, 0.0], [1.0, 1.0]) == -math.inf
    assert cohens_d([2.0, 2.0], [1.0, 1.0]) == math.inf


def test_bootstrap_of_a_large_sample_is_batched_and_equals_scipy_unbatched() -> None:
    from scipy.stats import bootstrap

    from datalint_persona.stats import BOOTSTRAP_BATCH_VALUES, BOOTSTRAP_RESAMPLES

    values = np.random.default_rng(3).standard_normal(5_000)
    assert BOOTSTRAP_RESAMPLES * values.size > BOOTSTRAP_BATCH_VALUES  # the batched path runs
    unbatched = bootstrap(
        (values,),
        np.mean,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(7),
        vectorized=True,
    ).confidence_interval
    assert bootstrap_mean_ci(values, seed=7) == (float(unbatched.low), float(unbatched.high))


def test_a_length_aware_null_recovers_the_growth_for_short_answers_and_is_calibrated_per_length() -> None:
    """Clean ΔP whose spread grows for short answers, as a mean over few tokens does: the fit finds
    the growth, and held-out draws fall below p = alpha at rate alpha at every length, where a null
    without lengths over-flags the short answers."""
    from scipy.stats import kstest, t

    def draws(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        lengths = np.exp(rng.uniform(np.log(2), np.log(3000), size=size))
        scale = 1.5 * np.sqrt(1 + 40.0 / lengths)
        return t.rvs(8, loc=0.3, scale=scale, random_state=rng), lengths

    values, lengths = draws(3000, 1)
    null = fit_clean_null(values, lengths)
    plain = fit_clean_null(values)
    assert null.length_scale == pytest.approx(40.0, rel=0.35)
    assert null.scale == pytest.approx(1.5, rel=0.1)
    assert plain.length_scale == 0.0
    fresh, fresh_lengths = draws(20000, 2)
    # the p-values are those of the t with the per-length scale, computed by scipy directly
    expected = t.sf(
        fresh, null.df, loc=null.loc, scale=null.scale * np.sqrt(1 + null.length_scale / fresh_lengths)
    )
    assert null.p_value(fresh, fresh_lengths) == pytest.approx(expected, rel=1e-12)
    short = fresh_lengths < 20
    for subset in (short, ~short):
        p = null.p_value(fresh[subset], fresh_lengths[subset])
        assert kstest(p, "uniform").pvalue > 0.001
        assert (p < 0.01).mean() == pytest.approx(0.01, rel=0.5)
    assert (plain.p_value(fresh[short]) < 0.01).mean() > 2 * 0.01
    assert null.z(2.0, length=10) == pytest.approx(
        (2.0 - null.loc) / (null.scale * np.sqrt(1 + null.length_scale / 10))
    )
    with pytest.raises(ValueError, match="lengths"):
        fit_clean_null(values, lengths[:-1])


def test_a_null_without_length_growth_is_kept_when_lengths_do_not_matter() -> None:
    from scipy.stats import t

    rng = np.random.default_rng(4)
    values = t.rvs(6, loc=1.0, scale=2.0, size=2000, random_state=rng)
    lengths = np.exp(rng.uniform(np.log(2), np.log(3000), size=2000))
    null = fit_clean_null(values, lengths)
    # the growth it finds is small: at 10 characters the scale is within 10% of the plain one
    assert null.scale_at(10) == pytest.approx(null.scale, rel=0.1)
    assert null.p_value(5.0, 1e9) == pytest.approx(null.p_value(5.0), rel=1e-6)
