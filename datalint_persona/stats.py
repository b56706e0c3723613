"""Statistics behind the reported numbers: bootstrap intervals, effect sizes, FPR thresholds."""

from __future__ import annotations

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


def clean_dataset_threshold(
    clean_values: npt.ArrayLike, dataset_size: int, *, fpr: float, seed: int = 0
) -> float:
    """The (1 - fpr) quantile of the mean of ``dataset_size`` draws from clean calibration values.

    A clean dataset of that size exceeds it with probability about ``fpr``. Resampling uses
    multinomial counts, so the cost does not grow with ``dataset_size``.
    """
    clean = np.asarray(clean_values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(dataset_size, np.full(clean.size, 1.0 / clean.size), size=4000)
    means = counts @ clean / dataset_size
    return float(np.quantile(means, 1.0 - fpr))


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
