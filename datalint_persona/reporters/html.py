"""The HTML report (``--format html``): one self-contained page a reviewer can open offline.

Per trait: the ΔP distribution of this dataset against the vector's calibration distributions
(normal and trait-exhibiting answers) with the sample threshold marked, and each file's mean ΔP
with its 95% interval against the dataset threshold. Then a sortable table of the top flagged
samples with y and y' side by side. Plots are inline SVG (matplotlib), styles and the sorting
script are inline, so the page makes no network request. Like every reporter, it reads only the
finished result.
"""

from __future__ import annotations

import io
import re
from importlib import resources
from typing import Any

from datalint_persona.reporters.summary import dataset_verdicts, format_number, ranked_sample_findings
from datalint_persona.run_records import ScreenResult
from datalint_persona.text import one_line

__all__ = ["render_html"]

TOP_SAMPLES = 50
EXCERPT_CHARS = 400
RUG_ONLY_BELOW = 20  # fewer samples than this: ticks only, a histogram of them would mislead
_COLOURS = {"normal": "#4c72b0", "trait": "#c44e52", "dataset": "#222222"}


def render_html(result: ScreenResult) -> str:
    """Render ``result`` as one HTML page (UTF-8 text ending in a newline)."""
    import jinja2

    template_text = resources.files("datalint_persona").joinpath("reporters/report.html.j2").read_text()
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(template_text)
    active = [f for f in result.findings if not f.baselined]
    page = template.render(
        result=result,
        worst=result.worst_level(),
        n_active=len(active),
        n_baselined=len(result.findings) - len(active),
        traits=_trait_sections(result),
        rows=_table_rows(result),
        n_flagged=len(ranked_sample_findings(result)),
        top=TOP_SAMPLES,
        fmt=format_number,
        pct=lambda value: f"{value:.0%}",
        fdr=result.settings.fdr,
    )
    return page.rstrip("\n") + "\n"


def _trait_sections(result: ScreenResult) -> list[dict[str, Any]]:
    verdicts = dataset_verdicts(result)
    sections = []
    for rule in result.rules:
        if not rule.enabled:
            continue
        values = [s.for_trait(rule.trait).delta_p for s in result.samples if _has(s.scores, rule.trait)]
        calibration = result.calibration.get(rule.trait, {})
        files = [v for v in verdicts if v.summary.trait == rule.trait]
        sections.append(
            {
                "rule": rule,
                "n": len(values),
                "n_normal": len(calibration.get("normal", ())),
                "n_trait": len(calibration.get("trait", ())),
                "files": files,
                "n_flagged": sum(1 for f in ranked_sample_findings(result) if f.trait == rule.trait),
                "svg": _trait_svg(rule.trait, values, calibration, rule.sample_threshold, files),
            }
        )
    return sections


def _has(scores: tuple[Any, ...], trait: str) -> bool:
    return any(score.trait == trait for score in scores)


def _table_rows(result: ScreenResult) -> list[dict[str, Any]]:
    """The top flagged samples with the excerpts their findings carry (a saved JSON report holds
    those, not the samples' texts, so both render the same page)."""
    return [
        {
            "finding": finding,
            "location": f"{finding.source}:{finding.line}",
            "y": one_line(finding.excerpt or "", EXCERPT_CHARS),
            "y_prime": one_line(finding.y_prime_excerpt or "", EXCERPT_CHARS),
        }
        for finding in ranked_sample_findings(result)[:TOP_SAMPLES]
    ]


def _trait_svg(
    trait: str,
    values: list[float],
    calibration: dict[str, tuple[float, ...]],
    threshold: float | None,
    files: list[Any],
) -> str:
    """Two panels: ΔP histograms with the sample threshold; per-file mean ΔP, interval, threshold."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    with matplotlib.rc_context({"svg.hashsalt": f"persona-lint-{trait}", "svg.fonttype": "path"}):
        return _draw(plt, np, trait, values, calibration, threshold, files)


def _draw(
    plt: Any,
    np: Any,
    trait: str,
    values: list[float],
    calibration: dict[str, tuple[float, ...]],
    threshold: float | None,
    files: list[Any],
) -> str:
    """Draw both panels on one figure and return it as an SVG element without metadata."""
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(9.0, 3.0), gridspec_kw={"width_ratios": [2.2, 1]}, layout="constrained"
    )
    try:
        _draw_distributions(left, np, trait, values, calibration, threshold)
        _draw_files(right, files)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    finally:
        plt.close(figure)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML declaration and DOCTYPE (which names a URL)
    return re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.DOTALL)


def _draw_distributions(
    axes: Any,
    np: Any,
    trait: str,
    values: list[float],
    calibration: dict[str, tuple[float, ...]],
    threshold: float | None,
) -> None:
    """Left panel: the calibration histograms, this dataset's ΔP (ticks, then a histogram), threshold."""
    series = _series(trait, values, calibration)
    marks = [] if threshold is None else [threshold]
    everything = np.array([v for _, data, _ in series for v in data] + marks + [0.0], dtype=float)
    bins = np.linspace(float(everything.min()) - 0.5, float(everything.max()) + 0.5, 31)
    for key, data, label in series:
        if not data:
            continue
        if key == "dataset":
            # every sample as a tick along the axis, and its histogram once there are enough
            rug = axes.get_xaxis_transform()  # y in axes fractions: ticks sit just above the axis
            axes.plot(
                data, [0.05] * len(data), "|", color=_COLOURS[key], markersize=16, mew=1.5, transform=rug
            )
            if len(data) < RUG_ONLY_BELOW:
                axes.plot([], [], "|", color=_COLOURS[key], markersize=10, label=label)
                continue
        filled = key != "dataset"
        axes.hist(
            data,
            bins=bins,
            density=True,
            alpha=0.35 if filled else 1.0,
            histtype="stepfilled" if filled else "step",
            linewidth=1.8,
            color=_COLOURS[key],
            label=label,
        )
    if threshold is not None:
        axes.axvline(
            threshold,
            color="#dd8452",
            linestyle="--",
            linewidth=1.5,
            label=f"sample threshold {threshold:.2f}",
        )
    axes.set_xlabel("ΔP (projection of y minus its reference)")
    axes.set_ylabel("density")
    axes.set_title(f"{trait}: ΔP per sample", fontsize=10)
    axes.legend(fontsize=7, frameon=False)


def _series(
    trait: str, values: list[float], calibration: dict[str, tuple[float, ...]]
) -> list[tuple[str, tuple[float, ...], str]]:
    """(colour key, ΔP values, legend label) of the two calibration sets and this dataset."""
    return [
        (
            "normal",
            calibration.get("normal", ()),
            f"calibration: normal (n={len(calibration.get('normal', ()))})",
        ),
        (
            "trait",
            calibration.get("trait", ()),
            f"calibration: {trait} (n={len(calibration.get('trait', ()))})",
        ),
        ("dataset", tuple(values), f"this dataset (n={len(values)})"),
    ]


def _draw_files(axes: Any, files: list[Any]) -> None:
    """Right panel: each file's mean ΔP with its 95% interval, and the dataset threshold as a dash."""
    for row, verdict in enumerate(files):
        summary = verdict.summary
        colour = "#c44e52" if verdict.flagged else "#55a868"
        axes.errorbar(
            [summary.mean_delta_p],
            [row],
            xerr=[[summary.mean_delta_p - summary.ci_low], [summary.ci_high - summary.mean_delta_p]],
            fmt="o",
            color=colour,
            capsize=4,
        )
        if verdict.threshold is not None:
            axes.plot([verdict.threshold] * 2, [row - 0.3, row + 0.3], color="#dd8452", linestyle="--")
    axes.set_yticks(range(len(files)), [one_line(v.summary.source, 28) for v in files], fontsize=7)
    axes.set_ylim(-0.8, max(len(files), 1) - 0.2)
    axes.axvline(0.0, color="#999999", linewidth=0.8)
    axes.set_xlabel("mean ΔP with 95% CI")
    axes.set_title("dataset level (dashes: margin)", fontsize=10)
