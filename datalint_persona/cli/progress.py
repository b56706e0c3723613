"""The screen command's live progress display on stderr (rich), so a long step never looks frozen.

Every stage shows a spinner, its count, the time it has taken and its rate; a ``model.generate``
batch also shows its decoding steps as they happen (``generate-tokens``), and the first y' that
reaches ``--max-new-tokens`` is warned about at once, above the bars (``y-prime-cut``), rather than
only in the final report. Under ``NO_COLOR`` the display has no colour or style (see
:func:`datalint_persona.cli.common.stderr_console`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

# Neither imports torch: persona-lint --help stays fast.
from datalint_persona.model.backends.decode_progress import DECODE_STAGE
from datalint_persona.screening.generation import CUT_STAGE

__all__ = ["LABELS", "ProgressDisplay", "progress_bar"]

LABELS = {
    "load-model": "Loading model",
    "generate": "Generating y'",
    DECODE_STAGE: "  tokens of this batch",
    "score": "Scoring",
    "shards": "Screening shards on Ray",
}
# A decoding step adds one token to every y' of the batch: its rate is tokens per y' per second.
UNITS = {"generate": "y'", DECODE_STAGE: "tok", "score": "texts", "shards": "shards"}


class ProgressDisplay:
    """The ``(stage, done, total)`` callback of a screening run, drawn on a rich ``Progress``.

    >>> from rich.console import Console
    >>> import io
    >>> display = ProgressDisplay(Console(file=io.StringIO()))
    >>> display("generate", 1, 4); display("generate-tokens", 30, 96)
    >>> [(t.description, t.completed, t.total) for t in display.progress.tasks]
    [("Generating y'", 1, 4), ('  tokens of this batch', 30, 96)]
    """

    def __init__(self, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.tasks: dict[str, Any] = {}
        self.warned_cut = False

    def __enter__(self) -> ProgressDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage == CUT_STAGE:
            self._warn_cut(done, total)
            return
        progress = self.progress
        if stage not in self.tasks:
            self.tasks[stage] = progress.add_task(LABELS.get(stage, stage), total=total, rate="")
        task = self.tasks[stage]
        if done < progress.tasks[task].completed:  # a new batch's decoding starts from 0
            progress.reset(task, total=total)
        progress.update(task, completed=done, total=total, visible=True, rate=self._rate(stage, task))
        if stage == "generate" and done >= total and DECODE_STAGE in self.tasks:
            progress.update(self.tasks[DECODE_STAGE], visible=False)

    def _rate(self, stage: str, task: Any) -> str:
        unit = UNITS.get(stage)
        speed = self.progress.tasks[task].speed if unit else None
        return f"{speed:.1f} {unit}/s" if speed else ""

    def _warn_cut(self, cut: int, generated: int) -> None:
        if self.warned_cut:
            return
        self.warned_cut = True
        self.progress.console.print(
            f"persona-lint: warning: {cut} of the {generated} y' just generated reached --max-new-tokens "
            "and were cut off (the report gives the run's count).",
            markup=False,
            highlight=False,
        )


def progress_bar(enabled: bool) -> tuple[Any, Callable[[str, int, int], None] | None]:
    """A rich progress display on stderr, only on a TTY and without --quiet: (context manager,
    callback), or (None, None)."""
    if not enabled or not sys.stderr.isatty():
        return None, None
    from datalint_persona.cli.common import stderr_console

    display = ProgressDisplay(stderr_console())
    return display, display
