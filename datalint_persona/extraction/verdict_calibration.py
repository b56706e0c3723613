"""The verdicts' part of a vector's calibration: the clean null, the gap and the dataset margin.

- **The clean null**: a Student t fitted to the ΔP of clean answers (the trait file's normal
  answers and, where given, clean datasets of other styles and authors), whose scale grows for
  short answers by a fitted ``length_scale`` (:class:`~datalint_persona.stats.CleanNull`); below
  reference weight 1, a second null fitted to the model's own answers.
- **The gap**: mean ΔP of trait answers minus that of normal answers, the unit of a dataset's effect.
- **The margin**: the effect a dataset must be shown to exceed (:func:`clean_margin`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona.errors import ConfigError
from datalint_persona.stats import bootstrap_mean_ci, fit_clean_null

if TYPE_CHECKING:
    from datalint_persona.extraction.calibration import CleanProjections
    from datalint_persona.screening.reference import Reference

# The margin is this multiple of the largest effect of a clean calibration source, and at least
# MIN_MARGIN of the gap: clean data of a style no calibration source has must pass too.
MARGIN_SAFETY = 1.5
MIN_MARGIN = 0.25
MIN_NULL_VALUES = 10


OWN_ANSWERS = "the model's own answers"


def clean_margin(effects_by_source: dict[str, np.ndarray]) -> float:
    """The dataset margin (a fraction of the gap) from the clean sources' per-sample effects.

    Each source's mean effect is taken at the upper end of its 95% interval; the margin is
    ``MARGIN_SAFETY`` times the largest of them, and at least ``MIN_MARGIN``.

    >>> clean_margin({"a": np.zeros(50), "b": np.full(50, 0.3)})
    0.45
    """
    uppers = [bootstrap_mean_ci(values)[1] for values in effects_by_source.values() if len(values)]
    return float(round(max(MIN_MARGIN, MARGIN_SAFETY * max(uppers, default=0.0)), 4))


def verdict_calibration(
    trait: str,
    trait_delta: np.ndarray,
    normal_delta: np.ndarray,
    own_projection: np.ndarray,
    reference: Reference,
    clean: CleanProjections | None,
    normal_lengths: np.ndarray | None = None,
) -> dict[str, Any]:
    """The sidecar's ``gap``, ``null`` and ``margin`` (see the module docstring).

    The null is fitted to the normal and clean answers (with their lengths in characters, where
    every answer's is given); below reference weight 1, a second null to the model's own answers,
    which then score (1 - w)(proj y' - m). The margin covers both.
    """
    gap = float(trait_delta.mean() - normal_delta.mean())
    by_source: dict[str, np.ndarray] = {"trait file: normal answers": normal_delta}
    lengths = [normal_lengths]
    own = [own_projection]
    if clean is not None and trait in clean.answers:
        sources = np.array(clean.sources)
        clean_delta = reference.delta_p(clean.answers[trait], clean.own_answers[trait])
        own.append(clean.own_answers[trait])
        for name in dict.fromkeys(clean.sources):
            by_source[name] = clean_delta[sources == name]
            lengths.append(None if clean.lengths is None else clean.lengths[sources == name])
    values = np.concatenate(list(by_source.values()))
    if values.size < MIN_NULL_VALUES:
        raise ConfigError(
            f"calibrating '{trait}': {values.size} normal and clean answers are too few for a clean null.",
            fix=f"pass clean answers with --clean FILE ({MIN_NULL_VALUES} answers in all at least; "
            "hundreds, of many styles, make better verdicts).",
        )
    known_lengths = [part for part in lengths if part is not None]
    null = fit_clean_null(
        values, np.concatenate(known_lengths) if len(known_lengths) == len(lengths) else None
    )
    own_delta = reference.delta_p(np.concatenate(own), np.concatenate(own))
    block: dict[str, Any] = {
        "gap": gap,
        "null": {
            "df": null.df,
            "loc": null.loc,
            "scale": null.scale,
            "length_scale": null.length_scale,
            "n": int(sum(len(v) for v in by_source.values())),
            "sources": {name: int(len(v)) for name, v in by_source.items()},
        },
    }
    # Below weight 1 the own answers score (1 - w)(proj y' - m), not 0: an ordinary answer is then a
    # clean one or the model's own, and a sample must be unusual against both nulls. At weight 1
    # they score exactly 0, and ΔP <= 0 is never flagged anyway.
    if reference.weight < 1.0 and own_delta.size >= MIN_NULL_VALUES and np.ptp(own_delta) > 0:
        own_null = fit_clean_null(own_delta)
        block["own_answer_null"] = {
            "df": own_null.df,
            "loc": own_null.loc,
            "scale": own_null.scale,
            "n": int(own_delta.size),
        }
    with_own = {**by_source, OWN_ANSWERS: own_delta}
    if gap > 0:
        block["clean_effects"] = {name: float(v.mean() / gap) for name, v in with_own.items()}
        block["margin"] = clean_margin({name: v / gap for name, v in with_own.items()})
    else:
        block["clean_effects"] = {}
    return block
