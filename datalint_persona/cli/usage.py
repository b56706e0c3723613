"""Click's own usage errors (a bad option value, an unknown option, a missing argument) as one line
in the tool's error form, ``persona-lint: error: <problem> Fix: <fix>``, with exit code 2.

Click would print a usage banner, a "Try --help" line and the error over four lines; every other
persona-lint error is one line (see :func:`datalint_persona.cli.common.errors_to_exit`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click
from click_default_group import DefaultGroup

from datalint_persona.cli.common import EXIT_ERROR, one_line

__all__ = ["PersonaLintGroup", "usage_error_line"]


def usage_error_line(error: click.UsageError) -> str:
    """The one line that the CLI prints for a Click usage error.

    >>> option = click.Option(["--format"], type=click.Choice(["json", "sarif"]))
    >>> try:
    ...     click.Command("screen", params=[option]).make_context("persona-lint", ["--format", "xml"])
    ... except click.UsageError as error:
    ...     print(usage_error_line(error).replace(". Fix: ", ".\\nFix: "))
    persona-lint: error: Invalid value for '--format': 'xml' is not one of 'json', 'sarif'.
    Fix: pass one of those values (see 'persona-lint --help').
    """
    command = error.ctx.command_path if error.ctx is not None else "persona-lint"
    problem = error.format_message().strip()
    if " Fix: " in problem:  # our own option parsers already say how to fix it
        return f"persona-lint: error: {one_line(problem)}"
    value_type = getattr(getattr(error, "param", None), "type", None)
    if isinstance(error, click.MissingParameter):
        fix = f"add it (see '{command} --help')."
    elif isinstance(error, click.BadParameter) and isinstance(value_type, click.Choice):
        fix = f"pass one of those values (see '{command} --help')."
    elif isinstance(error, click.BadParameter) and isinstance(value_type, (click.IntRange, click.FloatRange)):
        fix = f"pass a number in the range that '{command} --help' shows."
    elif isinstance(error, click.BadParameter):
        fix = f"see '{command} --help' for the values it takes."
    elif isinstance(error, click.NoSuchOption):
        fix = f"see '{command} --help' for its options."
    else:
        fix = f"see '{command} --help'."
    if not problem.endswith((".", "?", ")")):
        problem += "."
    return f"persona-lint: error: {one_line(problem)} Fix: {fix}"


class PersonaLintGroup(DefaultGroup):  # type: ignore[misc]  # click-default-group ships no type hints
    """The top-level group: runs a command, printing a usage error as one line and exiting 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            # --help and --version come back as 0; a command that returns calls sys.exit itself
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as error:  # no arguments: the help, as before
            error.show()
            sys.exit(EXIT_ERROR)
        except click.UsageError as error:
            click.echo(usage_error_line(error), err=True)
            sys.exit(EXIT_ERROR)
        except click.ClickException as error:  # for example a file that click could not open
            click.echo(f"persona-lint: error: {one_line(error.format_message())}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)
