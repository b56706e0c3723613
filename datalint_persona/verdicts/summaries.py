"""The warnings that count samples. The engine and ``persona-lint merge`` (which recomputes them
over all shards) share them; the verdicts are in :mod:`datalint_persona.verdicts.decide`.
"""

from __future__ import annotations

from collections.abc import Iterable

from datalint_persona.types import SampleScore


def count_warnings(scores: Iterable[SampleScore], max_tokens: int, max_new_tokens: int) -> list[str]:
    """The warnings that count samples: inputs cut at ``max_tokens``, y' cut at ``max_new_tokens``,
    and empty y' (the model ended its turn at once; each is scored at its end-of-turn token).

    A merge of shards recomputes them over all samples, so both use this one wording.
    """
    warnings = []
    total = truncated = hit_limit = empty = 0
    for score in scores:  # one pass: a spool on disk is read once
        total += 1
        truncated += score.truncated
        hit_limit += score.y_prime_hit_token_limit
        empty += not score.y_prime
    if truncated:
        warnings.append(f"{truncated} sample(s) exceeded {max_tokens} tokens and were truncated.")
    if hit_limit:
        warnings.append(
            f"{hit_limit} of {total} y' reached --max-new-tokens {max_new_tokens} and were cut off."
        )
    if empty:
        warnings.append(
            f"{empty} of {total} y' were empty: the model ended its turn at once. Each was scored at "
            "its end-of-turn token."
        )
    return warnings
