"""Statistics against independent formulas and brute-force resampling."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datalint_persona.stats import (
    bootstrap_mean_ci,
    clean_dataset_threshold,
    cohens_d,
    threshold_at_fpr,
    tpr_at_threshold,
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


@pytest.mark.parametrize("size", [10, 40, 300])
def test_clean_dataset_threshold_matches_brute_force_bootstrap(size: int) -> None:
    clean = np.random.default_rng(7).gamma(2.0, 1.5, size=60) - 3.0
    fpr = 0.05
    got = clean_dataset_threshold(clean, size, fpr=fpr, seed=0)
    rng = np.random.default_rng(99)
    means = rng.choice(clean, size=(20000, size), replace=True).mean(axis=1)
    expected = float(np.quantile(means, 1 - fpr))
    spread = float(np.std(means))
    assert got == pytest.approx(expected, abs=0.15 * spread + 1e-9)
    # The brute-force clean datasets exceed it about fpr of the time.
    assert (means > got).mean() == pytest.approx(fpr, abs=0.02)


def test_clean_dataset_threshold_shrinks_towards_the_mean_with_size() -> None:
    clean = np.random.default_rng(2).normal(0.0, 1.0, size=50)
    thresholds = [clean_dataset_threshold(clean, n, fpr=0.05) for n in (1, 10, 100, 1000)]
    assert thresholds == sorted(thresholds, reverse=True)
    assert thresholds[-1] - clean.mean() < 0.1


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
