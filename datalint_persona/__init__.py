"""persona-lint: screen finetuning datasets for persona shifts with persona vectors.

>>> from datalint_persona import screen  # doctest: +SKIP
>>> result = screen(["train.jsonl"])  # doctest: +SKIP
>>> result.worst_level()  # doctest: +SKIP
'none'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from datalint_persona.screening.engine import screen


def __getattr__(name: str) -> Any:
    # Imported lazily so that `persona-lint --help` never imports torch.
    if name == "screen":
        from datalint_persona.screening.engine import screen

        return screen
    raise AttributeError(name)


__all__ = ["__version__", "screen"]
