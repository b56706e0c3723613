"""``persona-lint merge``: recombine the JSON reports of ``--shard i/N`` runs into one report."""

from __future__ import annotations

import sys

import click

from datalint_persona.cli.common import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    debug_option,
    errors_to_exit,
    stdout_console,
)
from datalint_persona.errors import PersonaLintError
from datalint_persona.reporters import REPORTERS, output_format_hint, write_report
from datalint_persona.settings import FAIL_ON
from datalint_persona.types import LEVEL_ORDER


@click.command("merge")
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["terminal", *REPORTERS]),
    default="json",
    show_default=True,
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the report here (atomically).",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    default="error",
    show_default=True,
    help="Exit 1 when a merged finding reaches this level.",
)
@click.option("--top", type=click.IntRange(1), default=20, show_default=True, help="Flagged samples shown.")
@debug_option
def merge_command(
    reports: tuple[str, ...], output_format: str, output: str | None, fail_on: str, top: int, debug: bool
) -> None:
    """Merge the JSON REPORTS of every shard of one run (persona-lint FILES --shard i/N --format json).

    The result equals one unsharded run: dataset-level ΔP, intervals and verdicts are recomputed
    over all samples.
    """
    with errors_to_exit(debug):
        from datalint_persona.reporters.terminal import print_terminal
        from datalint_persona.screening.merge import merge_reports

        result = merge_reports(list(reports))
        if output_format == "terminal":
            if output is not None:
                raise PersonaLintError(output_format_hint(), fix="add --format json.")
            print_terminal(result, stdout_console(), top=top)
        else:
            text = REPORTERS[output_format](result)
            if output is None:
                click.echo(text, nl=False)
            else:
                write_report(text, output, inputs=list(reports))
                click.echo(f"Merged {len(reports)} shard reports into {output}", err=True)
    worst = result.worst_level()
    failed = fail_on != "never" and worst != "none" and LEVEL_ORDER[worst] >= LEVEL_ORDER[fail_on]
    sys.exit(EXIT_FINDINGS if failed else EXIT_CLEAN)
