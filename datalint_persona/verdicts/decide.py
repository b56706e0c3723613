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

The engine and ``persona-lint merge`` share :func:`decide`, which wires the sample p-values of
:mod:`datalint_persona.verdicts.samples` and the file tests of :mod:`datalint_persona.verdicts.datasets`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from datalint_persona.types import DatasetSummary, RuleInfo, SampleScore
from datalint_persona.verdicts.datasets import DEFAULT_DATASET_ALPHA, dataset_summaries
from datalint_persona.verdicts.samples import DEFAULT_FDR, ScoreColumns, sample_verdicts

__all__ = ["Verdicts", "annotate", "decide"]


@dataclass(frozen=True)
class Verdicts:
    """Everything :func:`decide` concluded; the per-sample arrays are (n_samples, n_rules), in
    the order the scores came in, columns in rule order."""

    summaries: tuple[DatasetSummary, ...]
    p_values: np.ndarray  # NaN where the rule has no clean null
    q_values: np.ndarray
    flagged: np.ndarray  # bool


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
    columns = ScoreColumns.gather(scores, rules)
    p, q, flagged = sample_verdicts(columns, rules, fdr)
    summaries = dataset_summaries(
        columns, rules, flagged, dataset_alpha=dataset_alpha, seed=seed, intervals=intervals
    )
    return Verdicts(tuple(summaries), p, q, flagged)


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
