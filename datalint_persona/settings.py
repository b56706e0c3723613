"""Find, read and validate configuration, and resolve a run's settings in one place.

Sources, lowest precedence first: built-in defaults, the rule files in ``rules/``, the nearest
``.persona-lint.yaml`` (or ``[tool.persona-lint]`` in ``pyproject.toml``) found from the working
directory upwards, then command-line options. :func:`screen_options` applies that order for the
CLI and the Python API alike. Config files are data only: YAML is read with ``safe_load``, and no
key names code to run. This module imports no torch.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from datalint_persona.errors import ConfigError, VectorError
from datalint_persona.suggest import did_you_mean, unknown_value

CONFIG_NAMES = (".persona-lint.yaml", ".persona-lint.yml")
# A real config has a few dozen values; YAML aliases can expand a short file into billions.
MAX_CONFIG_VALUES = 10_000
DEFAULT_MODEL = "smollm2-135m-instruct"
# The cache folder's name; screen_options puts it in the repository root (default_cache_dir).
DEFAULT_CACHE_DIR = ".persona-lint-cache"
BACKENDS = ("transformers", "vllm")  # the y' generation backends (datalint_persona.model.backends)
FAIL_ON = ("note", "warning", "error", "never")  # --fail-on: the lowest level that fails a run
RULE_LEVELS = ("note", "warning", "error")
# torch device types a run can ask for, optionally with an index (cuda:1).
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "npu", "hpu")
_DEVICE = re.compile(rf"auto|(?:{'|'.join(DEVICE_TYPES)})(?::\d+)?")


@dataclass(frozen=True)
class Config:
    values: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    text: str | None = field(default=None, repr=False, compare=False)  # a YAML file's text, for lines

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


@cache
def _schema() -> dict[str, Any]:
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
    validator = jsonschema.Draft202012Validator(_schema())
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


def _yaml_line(text: str, keys: Sequence[object]) -> int | None:
    """The 1-based line of the value at ``keys`` in a YAML document (as far as the keys exist).

    Uses ``yaml.compose``, which builds only the node tree: no objects, no tags resolved to code.

    >>> _yaml_line("seed: 1\\nrules:\\n  evil:\\n    level: loud\\n", ["rules", "evil", "level"])
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
    return Config(validate_config(values, str(path), lambda keys: _yaml_line(text, keys)), str(path), text)


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


def default_cache_dir(start: Path | None = None) -> str:
    """``.persona-lint-cache`` in the repository root: the nearest folder from ``start`` (default:
    the working directory) upwards that holds ``.git`` (a folder, or the file of a worktree or a
    submodule), else in ``start`` itself. A run from a subfolder thus reuses the root's y'.

    >>> default_cache_dir(Path("/")) == str(Path("/") / DEFAULT_CACHE_DIR)
    True
    """
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return str(candidate / DEFAULT_CACHE_DIR)
    return str(folder / DEFAULT_CACHE_DIR)


@dataclass(frozen=True)
class ScreenOptions:
    """Settings of one screening run; :func:`screen_options` builds it from options and config."""

    model: str = DEFAULT_MODEL
    backend: str = "transformers"
    vectors: str | None = None
    traits: tuple[str, ...] | None = None
    max_new_tokens: int | None = None  # None: the vectors' calibrated y' budget
    max_tokens: int | None = None  # None: the model's context length
    batch_size: int = 16
    seed: int = 0
    temperature: float = 0.0
    cache_dir: str | None = DEFAULT_CACHE_DIR
    skip_invalid: bool = False
    max_samples: int | None = None
    split: str = "train"
    fail_on: str = "error"
    dataset_fpr: float = 0.05  # family-wise rate of dataset verdicts (Holm over files x traits)
    fdr: float = 0.05  # false discovery rate of sample verdicts (Benjamini-Hochberg)
    device: str = "auto"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None  # vLLM's share of the GPU; None: the backend's default
    shard: str | None = None  # "i/N": screen only samples whose global index % N == i - 1
    chunk_size: int = 8192  # samples generated and scored together (vLLM gets one call per chunk)
    rule_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    changed_since: str | None = None  # git ref: per-sample findings only on lines changed since it
    baseline: str | None = None  # baseline file whose findings (and suppressions) are accepted

    def __post_init__(self) -> None:
        """Refuse a value outside a field's choices (``screen(fail_on="warnings")``) by name."""
        for name, allowed in (("fail_on", FAIL_ON), ("backend", BACKENDS)):
            if getattr(self, name) not in allowed:
                raise unknown_value(f"setting '{name}'", "value", getattr(self, name), allowed)
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            raise unknown_value("setting 'device'", "device", self.device, ("auto", *DEVICE_TYPES, "cuda:0"))
        for trait, rule in self.rule_overrides.items():
            for key in rule:
                if key not in rule_keys():
                    raise unknown_value(
                        f"setting 'rule_overrides' of trait '{trait}'", "key", key, rule_keys()
                    )


# Config values that are paths, relative to the config file's folder (a model is one only when
# that path exists; otherwise it is a hub id or an alias, kept as written).
_PATH_KEYS = ("vectors", "cache-dir", "model")


def rule_keys() -> tuple[str, ...]:
    """The keys of a rule's settings (``rules.TRAIT.KEY`` in a config), from the config schema."""
    return tuple(sorted(_schema()["properties"]["rules"]["additionalProperties"]["properties"]))


def screen_options(
    given: Mapping[str, Any], config: Config, *, origins: Mapping[str, str] | None = None
) -> ScreenOptions:
    """The run's settings: ``given`` (only what the caller set explicitly) > ``config`` > defaults.

    ``given`` is keyed by :class:`ScreenOptions` field names; a config key is the field's name in
    kebab case (``cache_dir`` -> ``cache-dir``), and ``max-new-tokens: auto`` means the vectors'
    budget. A path in the config is relative to the config file's folder; without ``cache_dir``
    from either, the cache is :func:`default_cache_dir`. ``given["rule_overrides"]`` is merged key
    by key over the config's ``rules``. Every trait named there must be a shipped rule's or one of
    the run's vectors' (see :func:`check_rule_traits`); ``origins`` says where each of ``given``'s
    came from (``{"evl": "--threshold evl=3"}``), for the error.

    >>> screen_options({"seed": 3}, Config({"seed": 1, "fdr": 0.1})).seed
    3
    >>> screen_options({"seed": 3}, Config({"seed": 1, "fdr": 0.1})).fdr
    0.1
    """
    values: dict[str, Any] = {}
    for option in fields(ScreenOptions):
        key = option.name.replace("_", "-")
        if option.name == "rule_overrides" or key not in config.values:
            continue
        values[option.name] = _config_value(config, key)
    if "traits" in values:
        values["traits"] = tuple(values["traits"]) or None
    values.update({name: value for name, value in given.items() if name != "rule_overrides"})
    if "cache_dir" not in values:  # neither an option nor the config names it (None is --no-cache)
        values["cache_dir"] = default_cache_dir()
    values["rule_overrides"] = _rule_overrides(config, given.get("rule_overrides", {}))
    options = ScreenOptions(**values)
    check_rule_traits(options, config, given.get("rule_overrides", {}), origins or {})
    return options


def check_rule_traits(
    options: ScreenOptions, config: Config, given: Mapping[str, Any], origins: Mapping[str, str]
) -> None:
    """Refuse a rule override for a trait that neither a shipped rule nor the run's vectors
    have (``rules: evill:``, ``--threshold evl=3``), naming where it was set.

    A shipped rule's trait passes even when ``--vectors`` lacks it, so one config can serve
    runs with other vectors.
    """
    if not options.rule_overrides:
        return
    from datalint_persona.verdicts.rules import shipped_rules

    known = set(shipped_rules())
    unknown = [trait for trait in options.rule_overrides if trait not in known]
    if not unknown:
        return
    if options.vectors is not None:
        from datalint_persona.persona.store import find_vectors

        try:
            known.update(vector.trait for vector in find_vectors(options.vectors, options.model))
        except VectorError:  # the run itself reports unusable vectors, with their own fix
            return
    for trait in unknown:
        if trait in known:
            continue
        if trait in given:
            where = origins.get(trait, "setting 'rule_overrides'")
        else:
            line = _yaml_line(config.text, ["rules", trait]) if config.text is not None else None
            place = f"{config.path}:{line}" if line is not None else str(config.path or "the config")
            if place.endswith("pyproject.toml"):
                place += " [tool.persona-lint]"
            where = f"{place}: key 'rules.{trait}'"
        raise unknown_value(where, "trait", trait, sorted(known))


def _config_value(config: Config, key: str) -> Any:
    """A config value as a :class:`ScreenOptions` field takes it."""
    value = config.values[key]
    if key == "max-new-tokens" and value == "auto":
        return None
    if key in _PATH_KEYS and config.path is not None:
        candidate = Path(config.path).parent / str(value)
        if key != "model" or candidate.exists():
            return str(candidate)
    return value


def _rule_overrides(config: Config, given: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The config's per-rule settings, with the caller's (``--threshold``, ``--level``) on top."""
    overrides = {trait: dict(rule) for trait, rule in config.get("rules", {}).items()}
    for trait, rule in given.items():
        overrides.setdefault(trait, {}).update(rule)
    return overrides
