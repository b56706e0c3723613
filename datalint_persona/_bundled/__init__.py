"""Data shipped with persona-lint: ``rules/``, ``vectors/`` and ``traits/``.

In a checkout these are links to the repository's top-level folders; in the wheel they are copied
here (see ``force-include`` in pyproject.toml). Code finds them with :func:`bundled`.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


def bundled(kind: str) -> Traversable:
    """The shipped folder ``kind`` ('rules', 'vectors' or 'traits')."""
    return resources.files("datalint_persona._bundled").joinpath(kind)
