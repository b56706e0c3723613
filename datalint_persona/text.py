"""Text helpers shared by the stages that show sample text and numbers (findings, reporters)."""

from __future__ import annotations


def one_line(text: str, width: int = 60) -> str:
    """Collapse whitespace and cut ``text`` to ``width`` characters, ending in an ellipsis if cut.

    >>> one_line("Sure!\\n\\n  Here   is how", 12)
    'Sure! Here …'
    """
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    return flat[: width - 1] + "…"


def format_number(value: float | None) -> str:
    """Format ΔP, z, q and thresholds the same way in every human-readable place.

    Four significant digits, because ΔP scales with the residual-stream norm of the rule's layer
    and can be 0.0123 at one layer and 45.6 at another.

    >>> format_number(3.14159), format_number(0.012345), format_number(2.0), format_number(None)
    ('3.142', '0.01235', '2', 'n/a')
    """
    if value is None:
        return "n/a"
    return f"{value:.4g}"
