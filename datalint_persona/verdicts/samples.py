"""Sample verdicts: each sample's one-sided p-value against the clean nulls, corrected over a run.

A sample's p-value is the largest of three: against the clean null (a Student t fitted at
calibration), against the model's own answers where the rule's reference does not make their ΔP 0,
and, in a file of at least ``MIN_OWN_FILE`` samples, against its own file (median and MAD). The
run's p-values are corrected together (Benjamini-Hochberg); :mod:`datalint_persona.verdicts.decide`
wires this with the dataset tests of :mod:`datalint_persona.verdicts.datasets`.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from datalint_persona.stats import CleanNull, benjamini_hochberg, robust_location_scale
from datalint_persona.types import RuleInfo, SampleScore

__all__ = [
    "DEFAULT_FDR",
    "MIN_OWN_FILE",
    "OWN_SCALE_FLOOR",
    "ScoreColumns",
    "clean_null",
    "own_answer_null",
    "sample_p_values",
    "sample_verdicts",
]

MIN_OWN_FILE = 20
# A file's own scale is floored at this share of the clean null's, so a file of identical ΔP
# (the model's own answers: all 0) does not make every other value an outlier.
OWN_SCALE_FLOOR = 0.25
DEFAULT_FDR = 0.05


@dataclass(frozen=True)
class ScoreColumns:
    """A run's scores as columns: each sample's file code and response length and, per rule, ΔP
    and both projections.

    The arrays are (n_samples, n_rules) in the order the scores came in, columns in rule order.
    """

    sources: np.ndarray  # (n_samples,) int64 codes into ``names``
    names: tuple[str, ...]  # the files, in order of first appearance
    delta: np.ndarray
    projection_y: np.ndarray
    projection_y_prime: np.ndarray
    lengths: np.ndarray | None = None  # (n_samples,) response lengths in characters; NaN: unknown

    @classmethod
    def gather(cls, scores: Iterable[SampleScore], rules: Sequence[RuleInfo]) -> ScoreColumns:
        """Read ``scores`` once (a spool on disk is read once) into columns.

        >>> from datalint_persona.types import Sample, TraitScore
        >>> rule = RuleInfo("persona/evil", "evil", "E", "", "error", 3, None, None, "")
        >>> score = SampleScore(Sample("a.jsonl", 1, (), "y"), 0, "y", False, False,
        ...                     (TraitScore("evil", 3, 2.0, 0.5, 1.5, None),))
        >>> columns = ScoreColumns.gather([score], [rule])
        >>> columns.names, columns.delta.tolist()
        (('a.jsonl',), [[1.5]])
        """
        source_codes: dict[str, int] = {}
        codes = array("q")
        lengths = array("d")
        delta, y, y_prime = ([array("d") for _ in rules] for _ in range(3))
        for score in scores:
            codes.append(source_codes.setdefault(score.sample.source, len(source_codes)))
            length = score.sample.response_length
            lengths.append(float("nan") if length is None else float(length))
            for k, rule in enumerate(rules):
                value = score.for_trait(rule.trait)
                delta[k].append(value.delta_p)
                y[k].append(value.projection_y)
                y_prime[k].append(value.projection_y_prime)
        sources = np.asarray(codes, dtype=np.int64)

        def stacked(columns: list[array[float]]) -> np.ndarray:
            if not columns:
                return np.zeros((sources.size, 0))
            return np.stack([np.asarray(column) for column in columns], axis=1)

        return cls(
            sources, tuple(source_codes), stacked(delta), stacked(y), stacked(y_prime), np.asarray(lengths)
        )


def clean_null(rule: RuleInfo) -> CleanNull | None:
    """The rule's clean null, where its vector was calibrated with one."""
    if rule.null_df is None or rule.calibration_mean is None or not rule.calibration_std:
        return None
    return CleanNull(rule.null_df, rule.calibration_mean, rule.calibration_std, rule.null_length_scale)


def own_answer_null(rule: RuleInfo) -> CleanNull | None:
    """The t of the model's own answers' ΔP, where the rule's reference weight is below 1."""
    return CleanNull(*rule.own_answer_null) if rule.own_answer_null else None


def sample_p_values(
    delta: np.ndarray,
    sources: np.ndarray,
    null: CleanNull | None,
    own_null: CleanNull | None = None,
    lengths: np.ndarray | None = None,
) -> np.ndarray:
    """(n,) one-sided p-values of one trait's ΔP (see the module docstring); NaN without a null.

    ``sources`` holds each sample's file as an integer code; ``own_null`` is the null of the
    model's own answers, where there is one; ``lengths`` the responses' lengths in characters,
    for the clean null's scale (NaN, or no array: its scale at any length). Samples with ΔP <= 0
    never pull toward the trait (p = 1).
    """
    if null is None:
        return np.full(delta.shape, np.nan)
    from scipy.stats import norm

    p = np.asarray(null.p_value(delta), dtype=np.float64)
    if lengths is not None and null.length_scale > 0:
        known = ~np.isnan(lengths)
        p[known] = null.p_value(delta[known], lengths[known])
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


def sample_verdicts(
    columns: ScoreColumns, rules: Sequence[RuleInfo], fdr: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p, q, flagged), each (n_samples, n_rules): q by Benjamini-Hochberg over the whole run.

    A rule with a set ``sample_threshold`` flags by that threshold instead (its q stays NaN).
    """
    delta, sources = columns.delta, columns.sources
    p = (
        np.stack(
            [
                sample_p_values(
                    delta[:, k], sources, clean_null(rule), own_answer_null(rule), columns.lengths
                )
                for k, rule in enumerate(rules)
            ],
            axis=1,
        )
        if rules
        else np.zeros((sources.size, 0))
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
    return p, q, flagged
