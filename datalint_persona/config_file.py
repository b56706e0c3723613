"""Find, read and validate config files: ``.persona-lint.yaml`` or ``[tool.persona-lint]`` in
``pyproject.toml``, from the working directory upwards.

Config files are data only: YAML is read with ``safe_load``, and no key names code to run. A
value that breaks the schema is an error naming the file, the line and the allowed values.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from datalint_persona.errors import ConfigError
from datalint_persona.suggest import did_you_mean

CONFIG_NAMES = (".persona-lint.yaml", ".persona-lint.yml")
# A real config has a few dozen values; YAML aliases can expand a short file into billions.
MAX_CONFIG_VALUES = 10_000


@dataclass(frozen=True)
class Config:
    values: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    text: str | None = field(default=None, repr=False, compare=False)  # a YAML file's text, for lines

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


@cache
def config_schema() -> dict[str, Any]:
    text = resources.files("datalint_persona").joinpath("schemas/config.schema.json").read_text()
    return dict(json.loads(text))


def _check_size(values: Any, where: str) -> None:
    """Refuse a config that expands (through YAML aliases) to more than MAX_CONFIG_VALUES values."""
    pending, seen = [values], 0
    while pending:
        value = pending.pop()
        seen += 1
        if seen > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{where}: the config expands to more than {MAX_CONFIG_VALUES} values "
                "(YAML aliases repeating a block?).",
                fix="write the values out; a persona-lint config needs only a few dozen.",
            )
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def validate_config(
    values: Any, where: str, line_of: Callable[[Sequence[object]], int | None] | None = None
) -> dict[str, Any]:
    """Validate against the config schema; the error names the key (and its line) and the fix.

    ``line_of`` maps a key path such as ``["rules", "evil", "level"]`` to its line in the file.
    """
    import jsonschema

    if values is None:
        return {}
    _check_size(values, where)
    validator = jsonschema.Draft202012Validator(config_schema())
    try:
        errors = sorted(validator.iter_errors(values), key=lambda e: [str(p) for p in e.absolute_path])
    except RecursionError:
        raise ConfigError(f"{where}: the config is nested too deeply.", fix="flatten the config.") from None
    if errors:
        error = errors[0]
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        located = list(error.absolute_path)
        message = f"{error.message}."
        if error.validator == "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            fix = f"remove or rename the key; allowed keys here: {', '.join(allowed) or 'any trait'}."
            if isinstance(error.instance, dict):  # point at the first unexpected key
                unexpected = sorted((str(k) for k in error.instance if k not in allowed), key=str)[:1]
                located += unexpected
                message += did_you_mean(unexpected[0], allowed) if unexpected else ""
        elif error.validator == "enum":
            allowed = [str(choice) for choice in error.validator_value]
            message += did_you_mean(str(error.instance), allowed)
            fix = f"use one of: {', '.join(allowed)}."
        else:
            fix = f"see the schema for '{key}' in the README's configuration section."
        line = line_of(located) if line_of is not None else None
        place = where if line is None else f"{where}:{line}"
        raise ConfigError(f"{place}: key '{key}': {message}", fix=fix)
    return dict(values)


def yaml_line(text: str, keys: Sequence[object]) -> int | None:
    """The 1-based line of the value at ``keys`` in a YAML document (as far as the keys exist).

    Uses ``yaml.compose``, which builds only the node tree: no objects, no tags resolved to code.

    >>> yaml_line("seed: 1\\nrules:\\n  evil:\\n    level: loud\\n", ["rules", "evil", "level"])
    4
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return None
    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(key)]
            if not match:
                break
            line, node = match[0][0].start_mark.line + 1, match[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _read_yaml(path: Path) -> Any:
    """Parse a YAML config as plain data: ``safe_load`` builds no objects, runs no code and
    follows no includes; a ``!!python/...`` tag is an error."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())
        if "python/" in problem or "could not determine a constructor" in problem:
            problem += "; config files are plain data, tags that build objects are not allowed"
        raise ConfigError(f"{path}{line}: invalid YAML: {problem}.", fix="fix the YAML syntax.") from None
    except RecursionError:
        raise ConfigError(f"{path}: the YAML is nested too deeply.", fix="flatten the config.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: can't read ({error}).", fix="check the file.") from None


def _read_toml(path: Path) -> dict[str, Any]:
    """Parse a ``pyproject.toml``; a syntax error names the file and its line."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        # tomllib (3.11) gives the place only in its message: "... (at line 3, column 7)".
        problem = str(error)
        at = re.search(r"\(at line (\d+), column \d+\)$", problem)
        where = f"{path}:{at.group(1)}" if at else str(path)
        problem = problem[: at.start()].strip() if at else problem
        raise ConfigError(f"{where}: invalid TOML: {problem}.", fix="fix the TOML syntax.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: can't read ({error}).", fix="check the file.") from None


def read_config_file(path: Path) -> Config:
    if path.name == "pyproject.toml":
        section = _read_toml(path).get("tool", {}).get("persona-lint")
        return Config(validate_config(section, f"{path} [tool.persona-lint]"), str(path))
    values = _read_yaml(path)
    text = path.read_text(encoding="utf-8")
    return Config(validate_config(values, str(path), lambda keys: yaml_line(text, keys)), str(path), text)


def discover_config(start: Path | None = None) -> Config:
    """The nearest config from ``start`` (default: the working directory) upwards, or an empty one.

    A ``pyproject.toml`` on the way that is not valid TOML is an error, not skipped: it may hold
    the ``[tool.persona-lint]`` section meant for this run.
    """
    folder = (start or Path.cwd()).resolve()
    for candidate_folder in (folder, *folder.parents):
        for name in CONFIG_NAMES:
            if (candidate_folder / name).is_file():
                return read_config_file(candidate_folder / name)
        pyproject = candidate_folder / "pyproject.toml"
        if pyproject.is_file():
            data = _read_toml(pyproject)
            if "persona-lint" in data.get("tool", {}):
                return read_config_file(pyproject)
    return Config()
