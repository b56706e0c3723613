"""``persona-lint vectors show``: a vector's per-layer curve and calibration, as rich tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from datalint_persona.persona.vectors import PersonaVector

_BAR_WIDTH = 20


def _bar(value: float, top: float) -> str:
    filled = 0 if top <= 0 else round(_BAR_WIDTH * max(value, 0.0) / top)
    return "█" * filled


def print_vector(vector: PersonaVector, console: Console) -> None:
    """Header, per-layer effect sizes against the random-direction null, then calibration."""
    meta = vector.metadata
    _print_header(vector, console)
    stats: list[dict[str, Any]] = meta.get("layer_stats", [])
    if stats:
        console.print(_layer_table(stats, meta.get("chosen_layer")))
    calibration = meta.get("calibration")
    if not calibration:
        console.print("Not calibrated: run 'persona-lint calibrate'.")
        return
    console.print(_calibration_table(calibration))
    _print_calibration_notes(calibration, console)


def _print_header(vector: PersonaVector, console: Console) -> None:
    """The trait, method, model and shape, then the extraction's sample counts."""
    meta = vector.metadata
    console.print(
        Text(
            f"{vector.trait}  ({vector.method}, {vector.direction} direction, model {vector.model_name}, "
            f"{vector.num_layers} layers × {vector.hidden_size})",
            style="bold",
        )
    )
    counts = meta.get("counts", {})
    if counts:
        console.print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()))


def _layer_table(stats: list[dict[str, Any]], chosen: Any) -> Table:
    """One row per layer: held-out Cohen's d, AUROC and the random-direction d95, with a bar."""
    top = max(s["cohens_d"] for s in stats)
    table = Table(title="Held-out effect size by layer (Cohen's d of projections)", title_justify="left")
    for column in ("layer", "d", "AUROC", "random d95", ""):
        table.add_column(column, justify="right" if column else "left", no_wrap=True)
    for s in stats:
        marker = "  ← chosen" if s["layer"] == chosen else ("  lexical" if s["layer"] == 0 else "")
        table.add_row(
            str(s["layer"]),
            f"{s['cohens_d']:.2f}",
            f"{s['auroc']:.3f}",
            f"{s['random_d95']:.2f}",
            Text(_bar(s["cohens_d"], top) + marker, style="green" if s["layer"] == chosen else ""),
        )
    return table


def _calibration_table(calibration: dict[str, Any]) -> Table:
    """The calibration's figures for all pairs and the confusable ones, at its layer and layer 0."""
    table = Table(
        title=f"Calibration at layer {calibration['layer']} "
        f"(threshold {calibration['sample_threshold']:.3f} at FPR {calibration['fpr']:.0%})",
        title_justify="left",
    )
    for column in ("pairs", "n", "AUROC", "d", "TPR", "FPR"):
        table.add_column(column, justify="left" if column == "pairs" else "right")
    for key, label in (
        ("overall", "all"),
        ("confusable", "confusable"),
        ("lexical_overall", "all, layer 0"),
        ("lexical_confusable", "confusable, layer 0"),
    ):
        figures = calibration.get(key)
        if figures:
            table.add_row(
                label,
                str(figures["n_pairs"]),
                f"{figures['auroc']:.3f}",
                f"{figures['cohens_d']:.2f}",
                f"{figures['tpr_at_threshold']:.2f}",
                f"{figures['fpr_at_threshold']:.2f}",
            )
    return table


def _print_calibration_notes(calibration: dict[str, Any], console: Console) -> None:
    """The clean null the verdicts use, the trait-normal gap and margin, the clean sources' effects."""
    null = calibration.get("null")
    if isinstance(null, dict):
        sources = ", ".join(f"{name} ({n})" for name, n in null.get("sources", {}).items())
        growth = float(null.get("length_scale", 0.0))
        scale = f"scale {null['scale']:.3f}" + (f" x sqrt(1 + {growth:.1f} / characters)" if growth else "")
        console.print(
            f"Verdicts: clean null t(df {null['df']:.1f}, centre {null['loc']:.3f}, {scale}) "
            f"from {null['n']} answers: {sources}."
        )
    if "gap" in calibration:
        margin = calibration.get("margin")
        console.print(
            f"Gap between trait and normal answers: ΔP {calibration['gap']:.3f}"
            + (
                f"; dataset margin {margin:.0%} of it (ΔP {margin * calibration['gap']:.3f})."
                if margin
                else "."
            )
        )
    effects = calibration.get("clean_effects", {})
    if effects:
        console.print(
            "Clean sources' mean effect: " + ", ".join(f"{k} {v:+.2f}" for k, v in effects.items()) + "."
        )
