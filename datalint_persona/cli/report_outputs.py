"""``--format`` and ``--output``, shared by ``screen``, ``merge`` and ``report``: several formats
from one result.

How they pair: the n-th ``--output`` receives the n-th ``--format``. One ``--format`` without
``--output`` goes to stdout. Otherwise every ``--format`` needs its own ``--output`` (the terminal
summary takes none: it prints beside the files unless ``--quiet``), and no file may be named twice.
Anything else is a usage error (exit 2) that says how to pair them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from datalint_persona.errors import PersonaLintError
from datalint_persona.reporters import (
    REPORTERS,
    STREAMED,
    open_report,
    output_format_hint,
    refuse_input_path,
    stream_report,
)
from datalint_persona.run_records import ScreenResult

__all__ = ["FORMATS", "ReportOutput", "emit_reports", "format_options", "pair_outputs"]

FORMATS = ("terminal", *REPORTERS)  # the terminal summary, then every registered report format
_EXAMPLE = "--format sarif --output persona.sarif --format json --output report.json"


@dataclass(frozen=True)
class ReportOutput:
    """One report to render: its format, and its file (None: stdout)."""

    output_format: str
    path: str | None


def format_options(default: str, output_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The repeatable ``--format`` (default ``default``) and ``--output``/``-o`` options."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--output",
            "-o",
            "outputs",
            multiple=True,
            type=click.Path(dir_okay=False),
            help=output_help + " Repeatable: the n-th --output gets the n-th --format.",
        )(command)
        return click.option(
            "--format",
            "formats",
            multiple=True,
            type=click.Choice(FORMATS),
            default=(default,),
            show_default=True,
            help="Report format. Repeat it, each with its --output, to write several formats at once.",
        )(command)

    return decorate


def pair_outputs(formats: Sequence[str], outputs: Sequence[str], inputs: Sequence[str]) -> list[ReportOutput]:
    """Pair each ``--format`` with its ``--output`` (see the module docstring), refusing bad pairs.

    >>> pair_outputs(("sarif", "json"), ("a.sarif", "a.json"), [])
    [ReportOutput(output_format='sarif', path='a.sarif'), ReportOutput(output_format='json', path='a.json')]
    >>> pair_outputs(("json",), (), [])
    [ReportOutput(output_format='json', path=None)]
    """
    if not outputs:
        if len(formats) > 1:
            raise PersonaLintError(
                f"{len(formats)} --format values but no --output: only one report can go to stdout.",
                fix=f"give each --format its --output, in the same order ({_EXAMPLE}).",
            )
        return [ReportOutput(formats[0], None)]
    if list(formats) == ["terminal"] and len(outputs) == 1:
        raise PersonaLintError(output_format_hint(), fix="add --format sarif.")
    if len(outputs) != len(formats):
        raise PersonaLintError(
            f"{len(formats)} --format value(s) but {len(outputs)} --output value(s): "
            "the n-th --output receives the n-th --format.",
            fix=f"give each --format its --output, in the same order ({_EXAMPLE}).",
        )
    if "terminal" in formats:
        raise PersonaLintError(
            "--format terminal takes no --output: the terminal summary prints whenever reports go to files.",
            fix="leave out --format terminal and its --output (add --quiet to silence the summary).",
        )
    seen: set[str] = set()
    for path in outputs:
        key = str(Path(path).resolve())
        if key in seen:
            raise PersonaLintError(
                f"--output '{path}' is given twice; each format needs a file of its own.",
                fix="choose another file for one of them.",
            )
        seen.add(key)
        refuse_input_path(path, inputs)
    return [ReportOutput(fmt, path) for fmt, path in zip(formats, outputs, strict=True)]


def emit_reports(
    result: ScreenResult,
    reports: Sequence[ReportOutput],
    *,
    inputs: Sequence[str],
    top: int,
    summary: bool,
    announce: bool,
) -> None:
    """Print the one stdout report, or write every file report atomically (then, with ``summary``,
    print the terminal summary; with ``announce``, name each file written on stderr). A JSON
    report streams sample by sample. Every file is complete before any replaces its target: a
    report that fails leaves every target as it was."""
    from datalint_persona.cli.common import stdout_console
    from datalint_persona.reporters.terminal import print_terminal

    if len(reports) == 1 and reports[0].path is None:
        output_format = reports[0].output_format
        if output_format == "terminal":
            print_terminal(result, stdout_console(), top=top)
            return
        text = None if output_format in STREAMED else REPORTERS[output_format](result)
        for warning in result.warnings:  # the report itself goes to stdout
            click.echo(f"persona-lint: warning: {warning}", err=True)
        if text is not None:
            click.echo(text, nl=False)
            return
        stdout = _Stdout()
        stream_report(result, output_format, stdout)
        stdout.flush()
        return
    with ExitStack() as written:  # each file replaces its target as the stack closes
        for report in reports:
            handle = written.enter_context(open_report(str(report.path), inputs))
            stream_report(result, report.output_format, handle)
    if summary:
        print_terminal(result, stdout_console(), top=top)
    for report in reports if announce else ():
        click.echo(f"Wrote the {report.output_format} report to {report.path}", err=True)


class _Stdout:
    """A text sink that hands what it is written to ``click.echo`` in 64 KiB pieces."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0

    def write(self, text: str) -> int:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= 1 << 16:
            self.flush()
        return len(text)

    def flush(self) -> None:
        click.echo("".join(self._parts), nl=False)
        self._parts, self._size = [], 0
