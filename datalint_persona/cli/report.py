"""``persona-lint report``: render a saved JSON report again, in any format, with no model."""

from __future__ import annotations

import sys

import click

from datalint_persona.cli.common import EXIT_CLEAN, EXIT_FINDINGS, debug_option, errors_to_exit
from datalint_persona.cli.report_outputs import emit_reports, format_options, pair_outputs
from datalint_persona.settings import FAIL_ON
from datalint_persona.types import LEVEL_ORDER


@click.command("report")
@click.argument("report", type=click.Path(exists=True, dir_okay=False))
@format_options("terminal", "Write the report here (atomically).")
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    default=None,
    help="Exit 1 when a finding reaches this level [default: the --fail-on of the run that wrote REPORT].",
)
@click.option("--top", type=click.IntRange(1), default=20, show_default=True, help="Flagged samples shown.")
@debug_option
def report_command(
    report: str,
    formats: tuple[str, ...],
    outputs: tuple[str, ...],
    fail_on: str | None,
    top: int,
    debug: bool,
) -> None:
    """Render the JSON REPORT of a run (written with --format json) in other formats.

    \b
    persona-lint report report.json                          the terminal summary
    persona-lint report report.json --format sarif -o persona.sarif
    persona-lint report report.json --format html -o r.html --format github -o r.txt

    Each format reads exactly as the run would have written it; no model is loaded.
    """
    with errors_to_exit(debug):
        from datalint_persona.reporters.saved_report import load_report

        pairs = pair_outputs(formats, outputs, [report])
        result = load_report(report)
        emit_reports(result, pairs, inputs=[report], top=top, summary=False, announce=True)
    level = fail_on or result.settings.fail_on
    worst = result.worst_level()
    failed = level != "never" and worst != "none" and LEVEL_ORDER[worst] >= LEVEL_ORDER[level]
    sys.exit(EXIT_FINDINGS if failed else EXIT_CLEAN)
