"""What every persona-lint subcommand shares: exit codes, error handling, the consoles, and the
options several commands declare (``--debug``, ``--clean``). The progress display is
:mod:`datalint_persona.cli.progress`."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import click

from datalint_persona.errors import PersonaLintError

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
MAX_MESSAGE_CHARS = 2000


def one_line(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """An error message as the CLI prints it: control characters escaped, at most ``limit`` chars.

    Messages can quote user data (a key, a role, a file name), which may hold line breaks or
    be megabytes long; the CLI still prints exactly one line.

    >>> one_line("invalid YAML:\\n  line 2\\x00")
    'invalid YAML: line 2\\\\x00'
    >>> len(one_line("x" * 5000))
    2000
    """
    spaced = " ".join(message.split())  # line breaks and tabs become single spaces
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in spaced)
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    return text[:head] + " … " + text[len(text) - (limit - head - 3) :]


def no_color(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``NO_COLOR`` is set to a non-empty value (no-color.org): then no ANSI escape at all.

    rich's own ``NO_COLOR`` handling drops colours but keeps bold, dim and underline.

    >>> no_color({"NO_COLOR": "1"}), no_color({"NO_COLOR": ""}), no_color({})
    (True, False, False)
    """
    return environ.get("NO_COLOR", "") != ""


def _console(**settings: Any) -> Any:
    from rich.console import Console

    if no_color():
        settings["color_system"] = None  # no styles at all, not only no colours
    return Console(**settings)


def stderr_console(quiet: bool = False) -> Any:
    return _console(stderr=True, quiet=quiet)


def stdout_console() -> Any:
    """The report console: the terminal's width on a TTY, 120 columns in logs and pipes; plain text
    under ``NO_COLOR``."""
    return _console(width=None if sys.stdout.isatty() else 120)


@contextmanager
def errors_to_exit(debug: bool) -> Iterator[None]:
    """Turn every error into one line on stderr and exit code 2 (a traceback only with --debug)."""
    try:
        yield
    except PersonaLintError as error:
        if debug:
            traceback.print_exc()
        click.echo(f"persona-lint: error: {one_line(str(error))}", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        click.echo("persona-lint: interrupted; finished work is cached, re-run to resume.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except (click.exceptions.Exit, click.ClickException, SystemExit):
        raise
    except Exception as error:  # noqa: BLE001 - the last line of defence for a linter
        if debug:
            traceback.print_exc()
        click.echo(
            f"persona-lint: internal error: {type(error).__name__}: {one_line(str(error))} "
            "(re-run with --debug for a traceback, and please report it)",
            err=True,
        )
        sys.exit(EXIT_ERROR)


def parse_assignments(values: tuple[str, ...], option: str, convert: Callable[[str], Any]) -> dict[str, Any]:
    """``TRAIT=VALUE`` option values (``--threshold evil=1.5``) as ``{trait: convert(value)}``.

    >>> parse_assignments(("evil=1.5",), "--threshold", float)
    {'evil': 1.5}
    """
    parsed = {}
    example = f"{option} evil={_EXAMPLE_VALUES.get(option, 'VALUE')}"
    for value in values:
        trait, sep, raw = value.partition("=")
        if not sep or not trait:
            raise click.BadParameter(
                f"'{value}' is not TRAIT=VALUE. Fix: name the trait and its value, for example {example}.",
                param_hint=option,
            )
        try:
            parsed[trait] = convert(raw)
        except ValueError:
            raise click.BadParameter(
                f"'{raw}' is not a valid value in '{value}'. Fix: give a value such as {example}.",
                param_hint=option,
            ) from None
    return parsed


_EXAMPLE_VALUES = {"--threshold": "2.5", "--level": "error"}  # for the fix of a malformed TRAIT=VALUE


def debug_option(command: Any) -> Any:
    """``--debug``: show the traceback of an error (see :func:`errors_to_exit`)."""
    return click.option("--debug", is_flag=True, help="Show tracebacks.")(command)


def clean_option(command: Any) -> Any:
    return click.option(
        "--clean",
        "clean_files",
        multiple=True,
        help="A dataset of clean answers (any input format; repeatable) for the clean null and the "
        "dataset margin, beside the trait file's normal answers.",
    )(command)
