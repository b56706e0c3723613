"""The workflow settings of a screening run: ``changed_since`` and ``baseline``, and writing a baseline.

The engine always screens and scores whole files; these settings then narrow and mark the
findings, so :func:`datalint_persona.screening.engine.screen` and the CLI report the same ones.
:func:`prepare_workflow` runs before the (slow) screening, so that a broken baseline or an unknown
git ref fails before the model loads; :func:`finish_workflow` applies them to the finished result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from datalint_persona.dataset.changes import ChangedLines, changed_lines, restrict_to_changes
from datalint_persona.run_records import ScreenResult
from datalint_persona.verdicts.baseline import Baseline, apply_baseline, read_baseline, write_baseline

__all__ = ["Workflow", "finish_workflow", "prepare_workflow", "write_and_accept_baseline"]


@dataclass(frozen=True)
class Workflow:
    """What the workflow settings need at the end of a run, read before it starts."""

    changed_since: str | None = None
    changes: Mapping[str, ChangedLines] | None = None  # per input file, when changed_since is set
    baseline_path: str | None = None
    baseline: Baseline | None = None


def prepare_workflow(changed_since: str | None, baseline: str | None, sources: Sequence[str]) -> Workflow:
    """Read the baseline and find the lines changed since the ref, before any screening work.

    Raises :class:`~datalint_persona.errors.ConfigError` for a broken baseline, an unknown ref,
    or an input outside a git repository.
    """
    read = read_baseline(baseline) if baseline else None
    changes = changed_lines(changed_since, sources) if changed_since else None
    return Workflow(changed_since, changes, baseline, read)


def finish_workflow(result: ScreenResult, workflow: Workflow) -> ScreenResult:
    """Keep per-sample findings on changed lines only, then mark those the baseline accepts."""
    if workflow.changes is not None and workflow.changed_since is not None:
        result = restrict_to_changes(result, workflow.changes, workflow.changed_since)
    if workflow.baseline is not None and workflow.baseline_path is not None:
        result = apply_baseline(result, workflow.baseline, workflow.baseline_path)
    return result


def write_and_accept_baseline(result: ScreenResult, path: str) -> tuple[ScreenResult, int]:
    """Write every finding of ``result`` to the baseline at ``path`` (keeping its suppressions),
    and return the result with them marked as baselined, and how many were written.

    Everything written is now accepted, so the run reports it as baselined (and passes).
    """
    count = write_baseline(result, path)
    return apply_baseline(result, read_baseline(path), path), count
