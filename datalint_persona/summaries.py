"""Dataset-level results from per-sample scores: each file's mean ΔP with its interval and verdict,
and the warnings that count samples. One pass over the scores, so a spool on disk is read once.

The engine and ``persona-lint merge`` (which recomputes them over all shards) share these.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from datalint_persona.types import DatasetSummary, RuleInfo, SampleScore


def count_warnings(scores: Iterable[SampleScore], max_tokens: int, max_new_tokens: int) -> list[str]:
    """The warnings that count samples: inputs cut at ``max_tokens``, y' cut at ``max_new_tokens``.

    A merge of shards recomputes them over all samples, so both use this one wording.
    """
    warnings = []
    total = truncated = hit_limit = 0
    for score in scores:  # one pass: a spool on disk is read once
        total += 1
        truncated += score.truncated
        hit_limit += score.y_prime_hit_token_limit
    if truncated:
        warnings.append(f"{truncated} sample(s) exceeded {max_tokens} tokens and were truncated.")
    if hit_limit:
        warnings.append(
            f"{hit_limit} of {total} y' reached --max-new-tokens {max_new_tokens} and were cut off."
        )
    return warnings


def summarize(
    scores: Iterable[SampleScore],
    rules: Sequence[RuleInfo],
    clean_values: Mapping[str, Sequence[float]],
    *,
    dataset_fpr: float,
    seed: int,
    thresholds: Mapping[str, Mapping[str, float | None]] | None = None,
) -> list[DatasetSummary]:
    """Per source file and trait: mean ΔP with a bootstrap 95% interval, and the verdict.

    One pass over ``scores`` (a spool on disk is read once) keeps three floats per sample and trait.
    ``thresholds`` ({source: {trait: threshold}}), when given, replaces each dataset threshold
    (a merge of shards passes the thresholds computed for the whole files).
    """
    from datalint_persona.stats import bootstrap_mean_ci, clean_dataset_threshold

    # {source: {trait: (ΔP, projection of y, projection of y')}}, sources in reading order
    columns: dict[str, dict[str, tuple[array[float], array[float], array[float]]]] = {}
    for score in scores:
        per_trait = columns.setdefault(score.sample.source, {})
        for rule in rules:
            value = score.for_trait(rule.trait)
            delta, y, y_prime = per_trait.setdefault(rule.trait, (array("d"), array("d"), array("d")))
            delta.append(value.delta_p)
            y.append(value.projection_y)
            y_prime.append(value.projection_y_prime)
    summaries = []
    for source, per_trait in columns.items():
        for rule in rules:
            delta_values, y_values, y_prime_values = (np.asarray(c) for c in per_trait[rule.trait])
            low, high = bootstrap_mean_ci(delta_values, seed=seed)
            threshold = rule.dataset_threshold
            if thresholds is not None:
                threshold = thresholds.get(source, {}).get(rule.trait)
            elif threshold is None and rule.trait in clean_values:
                threshold = clean_dataset_threshold(
                    clean_values[rule.trait], len(delta_values), fpr=dataset_fpr, seed=seed
                )
            mean = float(delta_values.mean())
            summaries.append(
                DatasetSummary(
                    trait=rule.trait,
                    source=source,
                    n_samples=len(delta_values),
                    mean_delta_p=mean,
                    ci_low=low,
                    ci_high=high,
                    mean_projection_y=float(np.mean(y_values)),
                    mean_projection_y_prime=float(np.mean(y_prime_values)),
                    threshold=threshold,
                    flagged=threshold is not None and mean > threshold,
                )
            )
    return summaries
