"""The terminal report: ranked flagged samples, per-trait dataset verdicts, invalid records, verdict.

All cell text goes through :class:`rich.text.Text`, so brackets in dataset responses are shown as
written and never read as rich markup. Colour follows the Console the caller passes in.
"""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table
from rich.text import Text

from datalint_persona.reporters.summary import (
    DatasetVerdict,
    dataset_verdicts,
    format_number,
    one_line,
    ranked_sample_findings,
)
from datalint_persona.run_records import ScreenResult
from datalint_persona.types import DatasetSummary, Finding
from datalint_persona.verdicts.datasets import MIN_DATASET_SAMPLES

__all__ = ["print_terminal"]

_LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "note": "cyan"}


def print_terminal(result: ScreenResult, console: Console, *, top: int = 20) -> None:
    """Print the run's findings to ``console``: up to ``top`` flagged samples, then summaries.

    >>> from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
    >>> model = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
    >>> settings = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", 0.05, 0.05)
    >>> console = Console(record=True, width=100)
    >>> print_terminal(ScreenResult("0", model, settings, (), (), (), (), (), (), (), "t0", "t1"), console)
    No findings.
    """
    ranked = ranked_sample_findings(result)
    if ranked:
        console.print(_sample_table(result, ranked[:top], len(ranked), console.width))
    verdicts = dataset_verdicts(result)
    if verdicts:
        console.print(_dataset_table(verdicts))
    if result.invalid:
        invalid = Table(title=f"Invalid records ({len(result.invalid)}, not screened)", title_justify="left")
        for column in ("location", "problem", "fix"):
            invalid.add_column(column)
        for record in result.invalid:
            location = Text(f"{record.source}:{record.line}")
            invalid.add_row(location, Text(record.problem), Text(record.fix or ""))
        console.print(invalid)
    for warning in result.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    console.print(_verdict_line(result))


def _sample_table(result: ScreenResult, shown: list[Finding], total: int, width: int) -> Table:
    shown_count = f"top {len(shown)} of {total}" if len(shown) < total else str(total)
    title = f"Flagged samples ({shown_count}, ranked by level, then z)"
    table = Table(title=title, title_justify="left")
    table.add_column("location", no_wrap=True)
    table.add_column("trait")
    for column in ("ΔP", "z", "q"):
        table.add_column(column, justify="right")
    table.add_column("level")
    table.add_column("response")
    # The excerpt gets what the other columns leave, so that narrow consoles never squeeze the
    # figures away (rich shrinks every column of an over-wide table, down to nothing).
    fixed = (
        max((len(f"{f.source}:{f.line}") for f in shown), default=8)
        + max((len(f.trait or "") for f in shown), default=5)
        + 3 * 9
        + len("error (suppressed)")
        + 3 * 7
        + 1
    )
    excerpt_width = max(16, width - fixed)
    wanted = {f.content_hash for f in shown if f.excerpt is None}
    # Only the shown samples' texts are kept (result.samples may be a spool of a large run).
    responses = (
        {s.sample.content_hash: s.sample.response for s in result.samples if s.sample.content_hash in wanted}
        if wanted
        else {}
    )
    for finding in shown:
        excerpt = finding.excerpt
        if excerpt is None:
            excerpt = responses.get(finding.content_hash or "", "")
        level = Text(finding.level, style=_LEVEL_STYLE[finding.level])
        if finding.baselined:
            marked = "suppressed" if finding.suppressed_in_source else "baselined"
            level = Text(f"{finding.level} ({marked})", style="dim")
        table.add_row(
            Text(f"{finding.source}:{finding.line}"),
            Text(finding.trait or ""),
            Text(format_number(finding.delta_p)),
            Text(format_number(finding.z)),
            Text(format_number(finding.extra.get("q_value"))),
            level,
            Text(one_line(excerpt, excerpt_width)),
        )
    return table


def _dataset_table(verdicts: tuple[DatasetVerdict, ...]) -> Table:
    table = Table(
        title="Datasets (mean ΔP per trait, and the share of the way from normal to trait answers; 95% CI)",
        title_justify="left",
    )
    table.add_column("source", no_wrap=True)
    table.add_column("trait")
    table.add_column("n", justify="right")
    table.add_column("mean ΔP [95% CI]", justify="right")
    table.add_column("shift [95% CI]", justify="right")
    table.add_column("margin", justify="right")
    table.add_column("verdict")
    for verdict in verdicts:
        summary, finding = verdict.summary, verdict.finding
        if finding is None and summary.status == "too-few-samples":
            outcome = Text(f"not enough samples to decide (n < {MIN_DATASET_SAMPLES})", style="dim")
        elif finding is None and summary.status == "uncalibrated":
            outcome = Text("no verdict (uncalibrated)", style="dim")
        elif finding is None:
            outcome = Text("ok", style="green")
        elif finding.baselined:
            outcome = Text(f"flagged: {finding.level} (baselined)", style="dim")
        else:
            outcome = Text(f"flagged: {finding.level}", style=_LEVEL_STYLE[finding.level])
        table.add_row(
            Text(summary.source),
            Text(summary.trait),
            Text(str(summary.n_samples)),
            Text(
                f"{format_number(summary.mean_delta_p)} "
                f"[{format_number(summary.ci_low)}, {format_number(summary.ci_high)}]"
            ),
            Text(_shift_text(summary)),
            Text(_margin_text(summary, verdict.threshold)),
            outcome,
        )
    return table


def _shift_text(summary: DatasetSummary) -> str:
    if summary.effect is None:
        return "n/a"
    return f"{summary.effect:.0%} [{summary.effect_low:.0%}, {summary.effect_high:.0%}]"


def _margin_text(summary: DatasetSummary, threshold: float | None) -> str:
    if summary.margin is not None:
        return f"{summary.margin:.0%}"
    return f"ΔP {format_number(threshold)}" if threshold is not None else "n/a"


def _verdict_line(result: ScreenResult) -> Text:
    """E.g. ``2 errors, 1 warning, 0 notes (1 baselined, 1 suppressed in the data, 1 invalid record)
    - worst: error``."""
    active = [f for f in result.findings if not f.baselined]
    if not result.findings and not result.invalid:
        return Text("No findings.", style="green")
    counts = Counter(f.level for f in active)
    parts = [_plural(counts.get(level, 0), level) for level in ("error", "warning", "note")]
    extras = []
    in_source = sum(f.suppressed_in_source for f in result.findings if f.baselined)
    if len(result.findings) - len(active) > in_source:
        extras.append(f"{len(result.findings) - len(active) - in_source} baselined")
    if in_source:
        extras.append(f"{in_source} suppressed in the data")
    if result.invalid:
        extras.append(_plural(len(result.invalid), "invalid record"))
    worst = result.worst_level()
    text = ", ".join(parts) + (f" ({', '.join(extras)})" if extras else "") + f" - worst: {worst}"
    return Text(text, style=_LEVEL_STYLE.get(worst, "green"))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
