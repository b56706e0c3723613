"""The reference a sample's answer is compared with: the model's own answer to the same prompt,
blended with the model's average own answer.

The paper's ΔP compares a(x, y) with a(x, y′), the model's own answer to the same prompt. y′ does
not depend on the sample's answer, only on its prompt, so it acts as a control variate: subtracting
w·proj(y′) leaves a trait shift in proj(y) untouched and removes the part of the score's variance
that the prompt explains. Where proj(y) and proj(y′) correlate weakly (short answers of another
style than the model's own), the full subtraction (w = 1) adds more noise than it removes. The
weight that minimises the variance of clean answers' scores is w = cov(proj y, proj y′) / var(proj y′)
(:func:`fit_reference`), measured on clean answers only, clipped to [0, 1]; the rest of the
reference, 1 - w, is the model's mean own-answer projection m over the calibration prompts:

    ΔP = proj(x, y) - (w · proj(x, y′) + (1 - w) · m)

w = 1 is the paper's ΔP; w = 0 is the raw projection, centred on the model's average answer. The
model's own answers (y = y′) score (1 - w)(proj y′ - m): zero on average, and exactly zero at w = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Reference:
    """``weight`` of the own answer y′ in the reference, and ``own_answer_mean`` m, the model's mean
    own-answer projection, which takes the rest."""

    weight: float = 1.0
    own_answer_mean: float = 0.0

    def delta_p(self, projection_y: np.ndarray | float, projection_y_prime: np.ndarray | float) -> np.ndarray:
        """ΔP of answers whose own answers project to ``projection_y_prime``.

        >>> float(Reference(0.5, 2.0).delta_p(3.0, 1.0))
        1.5
        """
        return np.asarray(projection_y) - (
            self.weight * np.asarray(projection_y_prime) + (1.0 - self.weight) * self.own_answer_mean
        )


def fit_reference(clean_projection: np.ndarray, clean_own_projection: np.ndarray) -> Reference:
    """The variance-minimising weight on clean answers, and the mean of their own answers.

    ``clean_projection`` and ``clean_own_projection`` are proj(y) and proj(y′) of the same clean
    samples.

    >>> rng = np.random.default_rng(0)
    >>> prompt = rng.normal(size=2000)
    >>> ref = fit_reference(prompt + rng.normal(size=2000), prompt)
    >>> round(ref.weight, 1)
    1.0
    """
    covariance = np.cov(clean_projection, clean_own_projection, ddof=1)
    weight = covariance[0, 1] / covariance[1, 1] if covariance[1, 1] > 0 else 1.0
    return Reference(float(np.clip(weight, 0.0, 1.0)), float(np.mean(clean_own_projection)))
