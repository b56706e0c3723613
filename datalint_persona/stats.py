"""Statistics behind the reported numbers: bootstrap intervals, effect sizes, thresholds, and the
tests behind the verdicts (a fitted clean null, robust standardization, one-sided t tests, and the
Benjamini-Hochberg and Holm corrections)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

BOOTSTRAP_RESAMPLES = 2000
# Resampled values held at once (float64): 32 MiB. Unbatched, scipy holds n_resamples x n values,
# 1.6 GB for 100k samples. Batches draw the same numbers from the generator, so the interval is equal.
BOOTSTRAP_BATCH_VALUES = 2**22


def bootstrap_mean_ci(
    values: npt.ArrayLike, *, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (scipy), deterministic for a given seed.

    >>> low, high = bootstrap_mean_ci([1.0, 2.0, 3.0, 4.0])
    >>> 1.0 <= low < 2.5 < high <= 4.0
    True
    """
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return float("nan"), float("nan")
    if data.size == 1 or np.all(data == data[0]):
        return float(data[0]), float(data[0])
    from scipy.stats import bootstrap

    result = bootstrap(
        (data,),
        np.mean,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
        vectorized=True,
        batch=max(1, BOOTSTRAP_BATCH_VALUES // data.size),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def cohens_d(positive: npt.ArrayLike, negative: npt.ArrayLike) -> float:
    """Standardized mean difference with the pooled standard deviation.

    >>> round(cohens_d([2.0, 4.0], [0.0, 2.0]), 3)
    1.414
    """
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    # (n - 1) * sample variance == sum of squared deviations, also defined for n == 1.
    squares = float(((pos - pos.mean()) ** 2).sum() + ((neg - neg.mean()) ** 2).sum())
    pooled = np.sqrt(squares / max(pos.size + neg.size - 2, 1))
    difference = float(pos.mean() - neg.mean())
    if pooled > 0:
        return difference / float(pooled)
    # No spread at all: the sign of the difference still says which way it points.
    return 0.0 if difference == 0 else float(np.copysign(np.inf, difference))


def auroc(positive: npt.ArrayLike, negative: npt.ArrayLike) -> float:
    """Area under the ROC curve (sklearn) of positives against negatives: the chance that a random
    positive scores above a random negative, ties counting half.

    >>> auroc([2.0, 3.0], [1.0, 2.0])
    0.875
    """
    from sklearn.metrics import roc_auc_score

    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    labels = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    return float(roc_auc_score(labels, np.r_[pos, neg]))


def threshold_at_fpr(negative_scores: npt.ArrayLike, fpr: float) -> float:
    """The smallest threshold with at most ``fpr`` of negatives strictly above it.

    >>> threshold_at_fpr(list(range(1, 21)), 0.05)  # 1 of 20 above 19 is exactly 5%
    19.0
    """
    scores = np.sort(np.asarray(negative_scores, np.float64))
    # At most k negatives may exceed it; the epsilon absorbs float error in fpr * n (0.29 * 100).
    allowed = min(int(np.floor(fpr * scores.size + 1e-9)), scores.size - 1)
    return float(scores[scores.size - 1 - allowed])


def tpr_at_threshold(positive_scores: npt.ArrayLike, threshold: float) -> float:
    positives = np.asarray(positive_scores, np.float64)
    return float((positives > threshold).mean()) if positives.size else float("nan")


@dataclass(frozen=True)
class CleanNull:
    """A Student t distribution fitted to the ΔP of clean answers: the null of "an ordinary answer".

    A mean over few tokens is noisier than one over many, so the scale may grow for short answers:
    at a response of ``n`` characters it is ``scale * sqrt(1 + length_scale / n)``. With
    ``length_scale`` 0 (older calibrations) every answer has the same scale.

    >>> null = CleanNull(df=5.0, loc=-1.0, scale=2.0)
    >>> round(null.p_value(-1.0), 3), null.p_value(9.0) < 0.01
    (0.5, True)
    >>> short = CleanNull(df=5.0, loc=0.0, scale=1.0, length_scale=30.0)
    >>> short.z(4.0, length=10), short.z(4.0, length=None)
    (2.0, 4.0)
    """

    df: float
    loc: float
    scale: float
    length_scale: float = 0.0

    def scale_at(self, lengths: npt.ArrayLike | None = None) -> Any:
        """The scale at responses of ``lengths`` characters (``scale`` itself where None)."""
        if lengths is None or self.length_scale == 0.0:
            return (
                self.scale
                if lengths is None or np.ndim(lengths) == 0
                else np.full(np.shape(lengths), self.scale)
            )
        n = np.maximum(np.asarray(lengths, dtype=np.float64), 1.0)
        result = self.scale * np.sqrt(1.0 + self.length_scale / n)
        return float(result) if np.ndim(result) == 0 else result

    def p_value(self, values: npt.ArrayLike, lengths: npt.ArrayLike | None = None) -> Any:
        """One-sided p-values P(ΔP_clean >= value) (an array for an array, a float for a float),
        for responses of ``lengths`` characters where given."""
        from scipy.stats import t

        scale = self.scale_at(lengths)
        result = t.sf(np.asarray(values, dtype=np.float64), self.df, loc=self.loc, scale=scale)
        return float(result) if np.ndim(result) == 0 else result

    def z(self, value: float, length: int | None = None) -> float:
        """``value`` in units of the null's scale (at a response of ``length`` characters), from its centre."""
        return float((value - self.loc) / self.scale_at(length))


def fit_clean_null(values: npt.ArrayLike, lengths: npt.ArrayLike | None = None) -> CleanNull:
    """Maximum-likelihood Student t fit (scipy) of clean ΔP values; ``df`` is kept in [2, 100].

    With ``lengths`` (each answer's length in characters), the scale's growth for short answers
    (``length_scale``, see :class:`CleanNull`) is fitted by maximum likelihood too.

    >>> rng = np.random.default_rng(0)
    >>> null = fit_clean_null(rng.standard_t(4, size=4000) * 2 + 1)
    >>> 3 < null.df < 6, abs(null.loc - 1) < 0.1, abs(null.scale - 2) < 0.15
    (True, True, True)
    """
    from scipy.stats import t

    data = np.asarray(values, dtype=np.float64)
    if data.size < 10:
        raise ValueError(f"a clean null needs at least 10 values, got {data.size}")
    df, loc, scale = t.fit(data)
    if not 2.0 <= df <= 100.0:
        df = float(np.clip(df, 2.0, 100.0))
        _, loc, scale = t.fit(data, fdf=df)
    plain = CleanNull(float(df), float(loc), float(scale))
    if lengths is None:
        return plain
    n = np.maximum(np.asarray(lengths, dtype=np.float64), 1.0)
    if n.shape != data.shape:
        raise ValueError(f"{n.size} lengths for {data.size} values")
    return _fit_length_scale(data, n, plain)


# The fitted length scale is kept within [0, LENGTH_SCALE_MAX] characters.
LENGTH_SCALE_MAX = 1e4


def _fit_length_scale(data: np.ndarray, n: np.ndarray, start: CleanNull) -> CleanNull:
    """The t with ``length_scale`` of largest likelihood, from ``start`` (whose length scale is 0)."""
    from scipy.optimize import minimize
    from scipy.stats import t

    # Optimized over 1 / df, which is better conditioned than df where the t is close to normal.
    def negative_log_likelihood(params: np.ndarray) -> float:
        inverse_df, loc, log_scale, length_scale = params
        scale = np.exp(log_scale) * np.sqrt(1.0 + length_scale / n)
        return float(-t.logpdf(data, 1.0 / inverse_df, loc=loc, scale=scale).sum())

    bounds = [(0.01, 0.5), (None, None), (None, None), (0.0, LENGTH_SCALE_MAX)]
    plain = np.array([1.0 / start.df, start.loc, np.log(start.scale), 0.0])
    best = None
    # Starts: no growth, and the scale doubling its variance at the median length, each from the
    # plain fit's df and from a t close to normal.
    for inverse_df in (1.0 / start.df, 0.02):
        for length_scale in (0.0, float(np.median(n))):
            x0 = np.array([inverse_df, start.loc, np.log(start.scale), length_scale])
            result = minimize(
                negative_log_likelihood,
                x0,
                method="L-BFGS-B",
                bounds=bounds,
                options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 2000},
            )
            if best is None or result.fun < best.fun:
                best = result
    assert best is not None
    if best.fun > negative_log_likelihood(plain):
        return start
    inverse_df, loc, log_scale, length_scale = (float(v) for v in best.x)
    return CleanNull(1.0 / inverse_df, loc, float(np.exp(log_scale)), length_scale)


def robust_location_scale(values: npt.ArrayLike) -> tuple[float, float]:
    """Median and normal-consistent median absolute deviation (scipy).

    >>> location, scale = robust_location_scale([1.0, 2.0, 3.0, 4.0, 100.0])
    >>> location, round(scale, 4)
    (3.0, 1.4826)
    """
    from scipy.stats import median_abs_deviation

    data = np.asarray(values, dtype=np.float64)
    return float(np.median(data)), float(median_abs_deviation(data, scale="normal"))


def benjamini_hochberg(p_values: npt.ArrayLike) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input's shape (scipy).

    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.5]).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    """
    from scipy.stats import false_discovery_control

    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p.copy()
    return np.asarray(false_discovery_control(p.ravel(), method="bh")).reshape(p.shape)


def holm(p_values: npt.ArrayLike) -> np.ndarray:
    """Holm's step-down adjusted p-values: reject where the result is at most alpha (FWER alpha).

    >>> holm([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
    [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.reshape(np.shape(p_values))


def mean_above_p_value(values: npt.ArrayLike, bound: float) -> float:
    """One-sided one-sample t test (scipy) of H0: mean <= ``bound``; the p-value.

    Constant data (no spread) gives 0 when it lies above the bound and 1 otherwise.

    >>> mean_above_p_value([3.0, 3.2, 2.9, 3.1, 3.0], 1.0) < 0.001, mean_above_p_value([0.0] * 5, 1.0)
    (True, 1.0)
    """
    from scipy.stats import ttest_1samp

    data = np.asarray(values, dtype=np.float64)
    if data.size < 2 or np.all(data == data[0]):
        return 0.0 if data.size and data[0] > bound else 1.0
    return float(ttest_1samp(data, bound, alternative="greater").pvalue)


def two_sample_above_p_value(first: npt.ArrayLike, second: npt.ArrayLike, margin: float) -> float:
    """Welch's one-sided t test (scipy) of H0: mean(first) - mean(second) <= ``margin``.

    >>> two_sample_above_p_value([5.0, 5.5, 6.0, 5.2], [1.0, 1.5, 0.5, 1.2], 1.0) < 0.01
    True
    """
    from scipy.stats import ttest_ind

    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64) + margin
    if a.size < 2 or b.size < 2:
        return 1.0
    if np.all(a == a[0]) and np.all(b == b[0]):
        return 0.0 if a[0] > b[0] else 1.0
    return float(ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)
