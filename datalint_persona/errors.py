"""One exception hierarchy for everything persona-lint reports to a user.

Every message names the place (file:line, rule, option), the problem, and the fix.
The CLI turns any :class:`PersonaLintError` into one line on stderr and exit code 2.
"""

from __future__ import annotations


class PersonaLintError(Exception):
    """Base class: a problem the user can fix. Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.problem = message
        self.fix = fix
        super().__init__(message if fix is None else f"{message} Fix: {fix}")


class InputError(PersonaLintError):
    """A dataset file or one of its records is unusable.

    >>> str(InputError("invalid JSON", path="train.jsonl", line=3, fix="repair the line"))
    'train.jsonl:3: invalid JSON Fix: repair the line'
    """

    def __init__(self, message: str, *, path: str, line: int | None = None, fix: str | None = None) -> None:
        self.path = path
        self.line = line
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {message}", fix=fix)
        self.problem = message


class ConfigError(PersonaLintError):
    """A config file, rule file or option has a bad value."""


class VectorError(PersonaLintError):
    """A persona vector file is missing, tampered with, or built for another model."""


class ModelError(PersonaLintError):
    """A model can't be found or loaded."""


class MissingDependencyError(PersonaLintError):
    """An optional dependency is not installed.

    >>> MissingDependencyError("vllm", extra="vllm").fix
    "pip install 'persona-lint[vllm]'"
    """

    def __init__(self, package: str, *, extra: str | None = None, why: str = "") -> None:
        install = f"pip install 'persona-lint[{extra}]'" if extra else f"pip install {package}"
        reason = f" (needed for {why})" if why else ""
        super().__init__(f"The optional package '{package}' is not installed{reason}.", fix=install)
