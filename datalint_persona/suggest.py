"""A typo in a setting is an error that names the key, the allowed values and the closest one.

>>> str(unknown_value("--threshold evl=3", "trait", "evl", ["evil", "humorous"]))
"--threshold evl=3: unknown trait 'evl'. Did you mean 'evil'? Fix: use one of: evil, humorous."
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from datalint_persona.errors import ConfigError


def closest(value: str, allowed: Iterable[str]) -> str | None:
    """The allowed value nearest to ``value`` (``difflib``'s ratio of at least 0.6), if any.

    >>> closest("warnings", ["note", "warning", "error"]), closest("xyz", ["note"])
    ('warning', None)
    """
    matches = difflib.get_close_matches(value, list(allowed), n=1)
    return matches[0] if matches else None


def did_you_mean(value: str, allowed: Iterable[str]) -> str:
    """`` Did you mean 'X'?`` for the closest allowed value, or nothing."""
    match = closest(value, allowed)
    return "" if match is None else f" Did you mean '{match}'?"


def unknown_value(where: str, what: str, value: object, allowed: Iterable[str]) -> ConfigError:
    """The error for ``value`` (a ``what``: trait, key, value) at ``where``, not one of ``allowed``."""
    choices = list(allowed)
    return ConfigError(
        f"{where}: unknown {what} '{value}'.{did_you_mean(str(value), choices)}",
        fix=f"use one of: {', '.join(choices) or '(none)'}.",
    )
