"""Reporters turn a finished :class:`~datalint_persona.run_records.ScreenResult` into text.

They read only the result (findings, scores, summaries) and never touch a model or torch.
``REPORTERS`` maps a ``--format`` name to a renderer; :func:`write_report` writes the text safely.
:func:`stream_report` writes a report to a handle; the JSON report goes sample by sample there, so
its memory does not grow with the run (``STREAMED`` names the formats that stream).
The terminal reporter lives in :mod:`datalint_persona.reporters.terminal` (it needs rich).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from datalint_persona.atomic import atomic_writer
from datalint_persona.errors import PersonaLintError
from datalint_persona.reporters.encoding import TextSink
from datalint_persona.reporters.github import render_github
from datalint_persona.reporters.gitlab import render_gitlab
from datalint_persona.reporters.html import render_html
from datalint_persona.reporters.json_report import render_json, write_json
from datalint_persona.reporters.sarif import render_sarif
from datalint_persona.run_records import ScreenResult

__all__ = [
    "REPORTERS",
    "STREAMED",
    "open_report",
    "output_format_hint",
    "refuse_input_path",
    "render_json",
    "render_sarif",
    "stream_report",
    "write_json",
    "write_report",
]

REPORTERS: dict[str, Callable[[ScreenResult], str]] = {
    "json": render_json,
    "sarif": render_sarif,
    "html": render_html,
    "gitlab": render_gitlab,
    "github": render_github,
}
# Formats whose writer streams to a handle: the same text as the renderer, in flat memory.
STREAMED: dict[str, Callable[[ScreenResult, TextSink], None]] = {"json": write_json}


def stream_report(result: ScreenResult, output_format: str, handle: TextSink) -> None:
    """Write the ``output_format`` report of ``result`` to ``handle`` (the text ``REPORTERS`` gives).

    >>> import io
    >>> from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
    >>> model = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
    >>> settings = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", 0.05, 0.05)
    >>> r = ScreenResult("0", model, settings, (), (), (), (), (), (), (), "t0", "t1")
    >>> out = io.StringIO(); stream_report(r, "json", out); out.getvalue() == render_json(r)
    True
    """
    writer = STREAMED.get(output_format)
    if writer is not None:
        writer(result, handle)
    else:
        handle.write(REPORTERS[output_format](result))


def output_format_hint() -> str:
    """What an --output without a report format is told, naming every registered format.

    >>> output_format_hint()
    '--output needs --format json or sarif (or html, gitlab or github).'
    """
    others = [name for name in REPORTERS if name not in ("json", "sarif")]
    listed = ", ".join(others[:-1]) + f" or {others[-1]}" if len(others) > 1 else "".join(others)
    return f"--output needs --format json or sarif (or {listed})."


def write_report(text: str, path: str, inputs: Sequence[str]) -> None:
    """Write ``text`` to ``path`` atomically, refusing to overwrite any of the ``inputs``.

    The text goes to a temporary file in the same directory, which then replaces ``path`` in one
    step, so a reader never sees half a report and a failed write leaves the old file untouched.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_report('{"ok": true}\\n', str(folder / "report.json"), inputs=[str(folder / "train.jsonl")])
    >>> (folder / "report.json").read_text()
    '{"ok": true}\\n'
    """
    with open_report(path, inputs) as handle:
        handle.write(text)


@contextmanager
def open_report(path: str, inputs: Sequence[str]) -> Iterator[TextIO]:
    """A UTF-8 text handle whose text replaces ``path`` atomically when the ``with`` block ends.

    The same checks as :func:`write_report`; if the block raises, ``path`` is left untouched.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with open_report(str(folder / "r.json"), inputs=[]) as handle:
    ...     _ = handle.write("{}\\n")
    >>> (folder / "r.json").read_text()
    '{}\\n'
    """
    target = Path(path)
    refuse_input_path(path, inputs)
    directory = target.resolve().parent
    if not directory.is_dir():
        raise PersonaLintError(
            f"Cannot write the report '{path}': the directory '{directory}' does not exist.",
            fix=f"create it first (mkdir -p '{directory}') or choose another report path",
        )
    with atomic_writer(target.resolve()) as raw:
        # newline="": "\n" is written as it is, as the text's own encode("utf-8") would.
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        try:
            yield text
            text.flush()
        finally:
            text.detach()  # the atomic writer still fsyncs and closes the file


def refuse_input_path(path: str, inputs: Sequence[str]) -> None:
    """Raise when the report path names one of the input files (so the dataset can't be lost)."""
    for input_path in inputs:
        if _same_file(Path(path), Path(input_path)):
            raise PersonaLintError(
                f"The report path '{path}' is the same file as the input '{input_path}'; "
                "writing the report would destroy the dataset.",
                fix="choose another report path, for example with --output report.sarif",
            )


def _same_file(report: Path, input_path: Path) -> bool:
    """Whether two paths name one file: same resolved path, or (hard links) same inode."""
    if report.resolve() == input_path.resolve():
        return True
    try:
        return os.path.samefile(report, input_path)
    except OSError:  # either does not exist yet (or is not a local path, e.g. a hub dataset id)
        return False
