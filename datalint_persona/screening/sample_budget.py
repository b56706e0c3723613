"""A run's token budget for one sample (``--max-sample-tokens``), and the early warning that names
the samples far over it while the data is first read, before the model loads."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from datalint_persona.dataset.oversize import oversize_warnings
from datalint_persona.errors import ConfigError
from datalint_persona.settings import DEFAULT_MAX_SAMPLE_TOKENS, ScreenOptions

if TYPE_CHECKING:
    from datalint_persona.dataset.loaders import DatasetScan

__all__ = ["early_sample_budget", "sample_token_budget", "warn_oversize"]


def sample_token_budget(opts: ScreenOptions, context_length: int) -> int:
    """The tokens one rendered x + y may have (``--max-sample-tokens``): the option's value, which
    must fit the model's context, else the default or the context, whichever is less."""
    if opts.max_sample_tokens is None:
        return min(DEFAULT_MAX_SAMPLE_TOKENS, context_length)
    if opts.max_sample_tokens > context_length:
        raise ConfigError(
            f"--max-sample-tokens {opts.max_sample_tokens} is more than the model's context of "
            f"{context_length} tokens.",
            fix=f"pass --max-sample-tokens {context_length} or less (max-sample-tokens in the config).",
        )
    return opts.max_sample_tokens


def early_sample_budget(opts: ScreenOptions, context_length: int | None = None) -> int:
    """The x + y budget as far as it is known before the model's facts are: the options' (both
    ``--max-sample-tokens`` and ``--max-tokens``), and the context where it is known.

    >>> early_sample_budget(ScreenOptions(max_sample_tokens=4096)), early_sample_budget(ScreenOptions(), 512)
    (4096, 512)
    """
    limits = [opts.max_sample_tokens or DEFAULT_MAX_SAMPLE_TOKENS]
    if opts.max_tokens is not None:
        limits.append(opts.max_tokens)
    if context_length is not None:
        limits.append(context_length)
    return min(limits)


def warn_oversize(scan: DatasetScan, budget: int) -> None:
    """One warning line per file on stderr, at once, naming its samples far over ``budget``."""
    for warning in oversize_warnings(scan.oversize, budget):
        print(f"persona-lint: warning: {warning}", file=sys.stderr, flush=True)
