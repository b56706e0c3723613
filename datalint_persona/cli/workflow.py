"""The screen command's workflow options: ``--changed-since``, ``--baseline`` and ``--write-baseline``.

They post-process the finished :class:`ScreenResult`; the engine always screens whole files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from datalint_persona.dataset.changes import ChangedLines
from datalint_persona.types import ScreenResult

__all__ = ["finish_workflow", "prepare_workflow", "workflow_options"]


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


def prepare_workflow(options: dict[str, Any], files: tuple[str, ...]) -> dict[str, ChangedLines] | None:
    """Check the workflow options before the (slow) screening and find the changed lines."""
    from datalint_persona.dataset.changes import changed_lines
    from datalint_persona.reporters import refuse_input_path
    from datalint_persona.verdicts.baseline import read_baseline

    if options["baseline_path"]:
        read_baseline(options["baseline_path"])  # a broken baseline fails before any work
    if options["write_baseline_path"]:
        refuse_input_path(options["write_baseline_path"], files)
    ref = options["changed_since"]
    return changed_lines(ref, files) if ref else None


def finish_workflow(
    result: ScreenResult, options: dict[str, Any], changes: dict[str, ChangedLines] | None
) -> ScreenResult:
    """Apply the changed-lines filter and the baseline; write a baseline when asked."""
    from datalint_persona.dataset.changes import restrict_to_changes
    from datalint_persona.verdicts.baseline import apply_baseline, read_baseline, write_baseline

    if changes is not None:
        result = restrict_to_changes(result, changes, options["changed_since"])
    if options["baseline_path"]:
        result = apply_baseline(result, read_baseline(options["baseline_path"]), options["baseline_path"])
    if options["write_baseline_path"]:
        count = write_baseline(result, options["write_baseline_path"])
        click.echo(f"Wrote {count} finding(s) to the baseline {options['write_baseline_path']}", err=True)
        # everything written is now accepted: the run reports them as baselined
        result = apply_baseline(
            result, read_baseline(options["write_baseline_path"]), options["write_baseline_path"]
        )
    return result
