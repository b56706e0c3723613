"""Resolve a run's settings in one place (the config files are read by :mod:`datalint_persona.config_file`).

Sources, lowest precedence first: built-in defaults, the rule files in ``rules/``, the nearest
``.persona-lint.yaml`` (or ``[tool.persona-lint]`` in ``pyproject.toml``) found from the working
directory upwards, then command-line options. :func:`screen_options` applies that order for the
CLI and the Python API alike. Config files are data only: YAML is read with ``safe_load``, and no
key names code to run. This module imports no torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from datalint_persona.config_file import Config, config_schema, yaml_line
from datalint_persona.errors import ConfigError, VectorError
from datalint_persona.model.dtypes import DTYPES
from datalint_persona.suggest import unknown_value

DEFAULT_MODEL = "smollm2-135m-instruct"
# The cache folder's name; screen_options puts it in the repository root (default_cache_dir).
DEFAULT_CACHE_DIR = ".persona-lint-cache"
# --max-sample-tokens' default: a longer sample is cut (the model's context, where that is less).
DEFAULT_MAX_SAMPLE_TOKENS = 2048
BACKENDS = ("transformers", "vllm")  # the y' generation backends (datalint_persona.model.backends)
FAIL_ON = ("note", "warning", "error", "never")  # --fail-on: the lowest level that fails a run
RULE_LEVELS = ("note", "warning", "error")
# torch device types a run can ask for, optionally with an index (cuda:1).
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "npu", "hpu")
_DEVICE = re.compile(rf"auto|(?:{'|'.join(DEVICE_TYPES)})(?::\d+)?")


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
    # Tokens of one rendered x + y before it is cut; None: DEFAULT_MAX_SAMPLE_TOKENS, at most the context.
    max_sample_tokens: int | None = None
    batch_size: int = 32  # generation and scoring; 32 ran fastest of 16, 32 and 64 (benchmarks/RESULTS.md)
    seed: int = 0
    temperature: float = 0.0
    cache_dir: str | None = DEFAULT_CACHE_DIR
    skip_invalid: bool = False
    max_samples: int | None = None
    split: str = "train"
    prompt_field: str | None = None  # the record field holding the prompt; None: detect the format
    response_field: str | None = None  # the record field holding the response
    fail_on: str = "error"
    dataset_fpr: float = 0.05  # family-wise rate of dataset verdicts (Holm over files x traits)
    fdr: float = 0.05  # false discovery rate of sample verdicts (Benjamini-Hochberg)
    device: str = "auto"
    dtype: str = "auto"  # float32, bfloat16, or auto: bfloat16 where the hardware runs it natively
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None  # vLLM's share of the GPU; None: the backend's default
    shard: str | None = None  # "i/N": screen only samples whose global index % N == i - 1
    chunk_size: int = 8192  # samples generated and scored together (vLLM gets one call per chunk)
    rule_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    changed_since: str | None = None  # git ref: per-sample findings only on lines changed since it
    baseline: str | None = None  # baseline file whose findings (and suppressions) are accepted

    def __post_init__(self) -> None:
        """Refuse a value outside a field's choices (``screen(fail_on="warnings")``) by name."""
        for name, allowed in (("fail_on", FAIL_ON), ("backend", BACKENDS), ("dtype", DTYPES)):
            if getattr(self, name) not in allowed:
                raise unknown_value(f"setting '{name}'", "value", getattr(self, name), allowed)
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            raise unknown_value("setting 'device'", "device", self.device, ("auto", *DEVICE_TYPES, "cuda:0"))
        budget = self.max_sample_tokens
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
            raise ConfigError(
                f"max_sample_tokens (--max-sample-tokens) is {budget!r}; it must be a whole number of "
                "tokens, at least 1.",
                fix="pass --max-sample-tokens N with 1 <= N <= the model's context "
                f"(default {DEFAULT_MAX_SAMPLE_TOKENS}).",
            )
        keys = rule_keys()
        for trait, rule in self.rule_overrides.items():
            for key in rule:
                if key not in keys:
                    raise unknown_value(f"setting 'rule_overrides' of trait '{trait}'", "key", key, keys)


# Config values that are paths, relative to the config file's folder (a model is one only when
# that path exists; otherwise it is a hub id or an alias, kept as written).
_PATH_KEYS = ("vectors", "cache-dir", "model")


def rule_keys() -> tuple[str, ...]:
    """The keys of a rule's settings (``rules.TRAIT.KEY`` in a config), from the config schema."""
    return tuple(sorted(config_schema()["properties"]["rules"]["additionalProperties"]["properties"]))


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
            line = yaml_line(config.text, ["rules", trait]) if config.text is not None else None
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
