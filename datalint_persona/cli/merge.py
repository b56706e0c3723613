"""``persona-lint merge``: recombine the JSON reports of ``--shard i/N`` runs into one report."""

from __future__ import annotations

import sys

import click

from datalint_persona.cli.common import EXIT_CLEAN, EXIT_FINDINGS, debug_option, errors_to_exit
from datalint_persona.cli.report_outputs import emit_reports, format_options, pair_outputs
from datalint_persona.settings import FAIL_ON
from datalint_persona.types import LEVEL_ORDER


@click.command("merge")
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@format_options("json", "Write the report here (atomically).")
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
    reports: tuple[str, ...],
    formats: tuple[str, ...],
    outputs: tuple[str, ...],
    fail_on: str,
    top: int,
    debug: bool,
) -> None:
    """Merge the JSON REPORTS of every shard of one run (persona-lint FILES --shard i/N --format json).

    The result equals one unsharded run: dataset-level ΔP, intervals and verdicts are recomputed
    over all samples.
    """
    with errors_to_exit(debug):
        from datalint_persona.screening.merge import merge_reports

        pairs = pair_outputs(formats, outputs, reports)
        result = merge_reports(list(reports))
        emit_reports(result, pairs, inputs=list(reports), top=top, summary=False, announce=True)
    worst = result.worst_level()
    failed = fail_on != "never" and worst != "none" and LEVEL_ORDER[worst] >= LEVEL_ORDER[fail_on]
    sys.exit(EXIT_FINDINGS if failed else EXIT_CLEAN)
