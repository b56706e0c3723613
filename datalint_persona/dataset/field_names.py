"""Which record fields hold the prompt and the response, for a dataset that names them otherwise
(``--prompt-field question --response-field answer``, or ``prompt-field:`` / ``response-field:``
in the config). :func:`datalint_persona.dataset.records.record_to_sample` reads them."""

from __future__ import annotations

from dataclasses import dataclass

from datalint_persona.errors import ConfigError


@dataclass(frozen=True)
class FieldNames:
    """The fields that hold the prompt and the response in a dataset that names them otherwise.

    >>> FieldNames.of(None, "answer")
    FieldNames(prompt='prompt', response='answer')
    >>> FieldNames.of(None, None) is None
    True
    """

    prompt: str = "prompt"
    response: str = "response"

    def __post_init__(self) -> None:
        for option, name in (("--prompt-field", self.prompt), ("--response-field", self.response)):
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"{option} is {name!r}; it must name a field", fix=f"pass {option} NAME")
        if self.prompt == self.response:
            raise ConfigError(
                f"--prompt-field and --response-field both name '{self.prompt}'",
                fix="name the field of the prompt and the field of the response",
            )

    @classmethod
    def of(cls, prompt: str | None, response: str | None) -> FieldNames | None:
        """The names a run sets (None: detect each record's format)."""
        if prompt is None and response is None:
            return None
        return cls(
            prompt if prompt is not None else "prompt", response if response is not None else "response"
        )
