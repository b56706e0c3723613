"""A record's own suppression: ``"persona_lint": {"ignore": ["evil"], "reason": "..."}``.

The key is metadata beside the record's prompt and response: it is read here, checked, and kept
on the :class:`~datalint_persona.types.Sample`; it is never part of the text screened. Whether
the traits it names exist is checked once the run knows its traits
(:func:`datalint_persona.verdicts.inline_ignore.check_ignored_traits`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from datalint_persona.errors import InputError
from datalint_persona.types import InlineIgnore

__all__ = ["IGNORE_KEY", "parse_inline_ignore"]

IGNORE_KEY = "persona_lint"
ALL_TRAITS = "all"
_EXAMPLE = '"persona_lint": {"ignore": ["evil"], "reason": "villain dialogue for a story dataset"}'
_KEYS = ("ignore", "reason")

# Builds the InputError for the record being read, from a problem and its fix.
_Fail = Callable[[str, str], InputError]


def parse_inline_ignore(value: object, fail: _Fail) -> InlineIgnore:
    """The ``persona_lint`` value of a record, checked; ``fail`` names the record in errors.

    A columnar source (CSV) may hold the object as JSON text.

    >>> def fail(problem, fix): return InputError(problem, path="a.jsonl", line=3, fix=fix)
    >>> parse_inline_ignore({"ignore": ["evil"], "reason": "fiction"}, fail)
    InlineIgnore(traits=('evil',), reason='fiction')
    >>> parse_inline_ignore('{"ignore": "all", "reason": "fiction"}', fail).traits is None
    True
    >>> parse_inline_ignore({"ignore": ["evil"]}, fail)
    Traceback (most recent call last):
    ...
    datalint_persona.errors.InputError: a.jsonl:3: 'persona_lint.reason' is missing ...
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise fail(
                f"'{IGNORE_KEY}' is text that is not a JSON object",
                f"write it as an object, e.g. {_EXAMPLE}",
            ) from None
    if not isinstance(value, Mapping):
        raise fail(f"'{IGNORE_KEY}' is {_describe(value)}, expected an object", f"write it as {_EXAMPLE}")
    unknown = sorted(str(key) for key in value if key not in _KEYS)
    if unknown:
        raise fail(
            f"'{IGNORE_KEY}' has the unknown key '{unknown[0]}'",
            f"use only 'ignore' and 'reason', as in {_EXAMPLE}",
        )
    return InlineIgnore(_traits(value.get("ignore"), fail), _reason(value.get("reason"), fail))


def _traits(value: object, fail: _Fail) -> tuple[str, ...] | None:
    where = f"'{IGNORE_KEY}.ignore'"
    fix = f'give a list of trait names, or "{ALL_TRAITS}", as in {_EXAMPLE}'
    if value is None:
        raise fail(f"{where} is missing", fix)
    if value == ALL_TRAITS:
        return None
    if not isinstance(value, (list, tuple)):
        raise fail(f"{where} is {_describe(value)}, expected a list of trait names", fix)
    if not value:
        raise fail(f"{where} is an empty list, so it suppresses nothing", fix + ", or drop the key")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            shown = "an empty string" if isinstance(item, str) else _describe(item)
            raise fail(f"{where} holds {shown}, expected trait names", fix)
    if ALL_TRAITS in value:
        return None
    return tuple(dict.fromkeys(value))


def _reason(value: object, fail: _Fail) -> str:
    where = f"'{IGNORE_KEY}.reason'"
    fix = "say why this sample is accepted (it is shown in every report), as in " + _EXAMPLE
    if value is None:
        raise fail(f"{where} is missing", fix)
    if not isinstance(value, str):
        raise fail(f"{where} is {_describe(value)}, expected a string", fix)
    if not value.strip():
        raise fail(f"{where} is empty", fix)
    return value.strip()


def _describe(value: object) -> str:
    from datalint_persona.dataset.records import describe_type  # records imports this module

    return describe_type(value)
