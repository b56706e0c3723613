"""What every persona-lint subcommand shares: exit codes, error handling, the stderr console."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from datalint_persona.errors import PersonaLintError

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def stderr_console(quiet: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=True, quiet=quiet)


def stdout_console() -> Any:
    """The report console: the terminal's width on a TTY, 120 columns in logs and pipes."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 120)


@contextmanager
def errors_to_exit(debug: bool) -> Iterator[None]:
    """Turn every error into one line on stderr and exit code 2 (a traceback only with --debug)."""
    try:
        yield
    except PersonaLintError as error:
        if debug:
            traceback.print_exc()
        click.echo(f"persona-lint: error: {error}", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        click.echo("persona-lint: interrupted; finished work is cached, re-run to resume.", err=True)
        sys.exit(130)
    except (click.exceptions.Exit, click.ClickException, SystemExit):
        raise
    except Exception as error:  # noqa: BLE001 - the last line of defence for a linter
        if debug:
            traceback.print_exc()
        click.echo(
            f"persona-lint: internal error: {type(error).__name__}: {error} "
            "(re-run with --debug for a traceback, and please report it)",
            err=True,
        )
        sys.exit(EXIT_ERROR)
