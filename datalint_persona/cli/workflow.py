"""The screen command's workflow options: ``--changed-since``, ``--baseline`` and ``--write-baseline``.

The screening pipeline applies them (:mod:`datalint_persona.screening.workflow`); this module
only declares them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["workflow_options"]


def workflow_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The three options, as one decorator for the screen command."""
    options = [
        click.option(
            "--changed-since",
            metavar="REF",
            default=None,
            help="Report per-sample findings only for samples added or changed since this git ref "
            "(dataset-level ΔP still covers whole files).",
        ),
        click.option(
            "--baseline",
            "baseline_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="Accept the findings (and apply the suppressions) listed in this baseline file.",
        ),
        click.option(
            "--write-baseline",
            "write_baseline_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="Write this run's findings to a baseline file (keeping its suppressions), then exit 0.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command
