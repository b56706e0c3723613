"""Text helpers shared by the stages that show sample text (findings, reporters)."""

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
