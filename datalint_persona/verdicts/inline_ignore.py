"""Suppressions written in the data: a record's ``"persona_lint": {"ignore": [...], "reason": ...}``.

They are honoured as a baseline's suppressions are: the finding is still reported, marked
baselined with the reason as its justification, and does not fail the run. Reports tell them
apart by ``suppressed_in_source`` (SARIF: a suppression of kind ``inSource``). The key itself is
read by :mod:`datalint_persona.dataset.inline_ignore`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from datalint_persona.errors import InputError
from datalint_persona.suggest import did_you_mean
from datalint_persona.types import Finding, InlineIgnore

__all__ = ["check_ignored_traits", "ignorable_traits", "suppress_in_source"]


def ignorable_traits(run_traits: Iterable[str]) -> list[str]:
    """The trait names a record may ignore: every shipped rule's, and the run's vectors'.

    A shipped trait passes even when the run does not screen it, so one dataset serves runs
    with other ``--trait`` choices.
    """
    from datalint_persona.verdicts.rules import shipped_rules

    return sorted({*shipped_rules(), *run_traits})


def check_ignored_traits(ignored: Mapping[str, tuple[str, int]], known: Iterable[str]) -> None:
    """Refuse a trait name that no rule or vector of the run knows, at the record that names it.

    ``ignored`` maps each name to the (source, line) first naming it
    (:attr:`~datalint_persona.dataset.loaders.DatasetScan.ignored_traits`).

    >>> check_ignored_traits({"evl": ("a.jsonl", 4)}, ["evil", "humorous"])
    Traceback (most recent call last):
    ...
    datalint_persona.errors.InputError: a.jsonl:4: ... unknown trait 'evl'. Did you mean 'evil'? ...
    """
    choices = sorted(set(known))
    for trait, (source, line) in ignored.items():
        if trait in choices:
            continue
        raise InputError(
            f"'persona_lint.ignore' names the unknown trait '{trait}'.{did_you_mean(trait, choices)}",
            path=source,
            line=line,
            fix=f'use trait names from: {", ".join(choices) or "(none)"}; or "all".',
        )


def suppress_in_source(finding: Finding, ignore: InlineIgnore | None) -> Finding:
    """``finding`` marked as suppressed by its record's own key, where that key covers its trait.

    >>> f = Finding("persona/evil", "error", "sample", "d.jsonl", 3, "m", "evil")
    >>> g = suppress_in_source(f, InlineIgnore(("evil",), "fiction"))
    >>> g.baselined, g.justification, g.suppressed_in_source
    (True, 'fiction', True)
    >>> suppress_in_source(f, InlineIgnore(("humorous",), "jokes")) == f
    True
    """
    if ignore is None or not ignore.covers(finding.trait):
        return finding
    return replace(finding, baselined=True, justification=ignore.reason, suppressed_in_source=True)
