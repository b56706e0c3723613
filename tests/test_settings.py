"""Typos in settings are errors that name the key, the allowed values and the closest one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from datalint_persona.config_file import Config, discover_config, read_config_file, validate_config
from datalint_persona.errors import ConfigError
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.settings import ScreenOptions, screen_options
from datalint_persona.suggest import closest


def _raises(call: Any, *needles: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        call()
    for needle in needles:
        assert needle in str(caught.value), str(caught.value)
    return caught.value


def _user_vectors(folder: Path, trait: str = "mytrait") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    PersonaVector(trait, np.ones((5, 8), np.float32), {"chosen_layer": 2}).save(folder / trait)
    return folder


def test_closest_uses_difflib_cutoff() -> None:
    assert closest("evl", ["evil", "humorous"]) == "evil"
    assert closest("zzzz", ["evil", "humorous"]) is None


# --------------------------------------------------------------------------- literal fields


@pytest.mark.parametrize(
    "field, value, suggestion",
    [("fail_on", "warnings", "warning"), ("backend", "vlm", "vllm"), ("device", "cudaa", "cuda")],
)
def test_a_bad_literal_field_is_named_with_a_suggestion(field: str, value: str, suggestion: str) -> None:
    error = _raises(
        lambda: ScreenOptions(**{field: value}),
        f"setting '{field}'",
        f"'{value}'",
        f"Did you mean '{suggestion}'?",
    )
    assert error.fix is not None and error.fix.startswith("use one of:") and suggestion in error.fix


def test_valid_devices_pass() -> None:
    for device in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        assert ScreenOptions(device=device).device == device


def test_an_unknown_rule_key_in_the_python_api_is_named() -> None:
    _raises(
        lambda: ScreenOptions(rule_overrides={"evil": {"treshold": 1.0}}),
        "trait 'evil'",
        "unknown key 'treshold'",
        "Did you mean 'sample-threshold'?",
    )


def test_screen_refuses_a_bad_fail_on_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datalint_persona.screening.engine import screen

    monkeypatch.chdir(tmp_path)  # no config to discover; the file need not exist
    _raises(lambda: screen(["missing.jsonl"], fail_on="warnings"), "fail_on", "Did you mean 'warning'?")
    _raises(lambda: screen(["missing.jsonl"], ScreenOptions(), fail_on="warnings"), "Did you mean 'warning'?")


# --------------------------------------------------------------------------- config files


def test_an_unknown_key_in_a_rule_entry_gets_a_suggestion() -> None:
    error = _raises(
        lambda: validate_config({"rules": {"evil": {"levle": "note"}}}, "cfg.yaml"),
        "cfg.yaml: key 'rules.evil'",
        "'levle' was unexpected",
        "Did you mean 'level'?",
    )
    assert error.fix is not None and "sample-threshold" in error.fix


def test_a_bad_enum_value_in_a_config_gets_a_suggestion() -> None:
    error = _raises(
        lambda: validate_config({"fail-on": "warnings"}, "cfg.yaml"),
        "key 'fail-on'",
        "Did you mean 'warning'?",
    )
    assert error.fix == "use one of: note, warning, error, never."


def test_an_unknown_trait_under_rules_names_file_line_and_suggestion(tmp_path: Path) -> None:
    path = tmp_path / ".persona-lint.yaml"
    path.write_text("seed: 1\nrules:\n  evill:\n    level: note\n", encoding="utf-8")
    error = _raises(
        lambda: screen_options({}, read_config_file(path)),
        f"{path}:3: key 'rules.evill'",
        "unknown trait 'evill'",
        "Did you mean 'evil'?",
    )
    assert error.fix is not None and "sycophancy" in error.fix


def test_an_unknown_trait_in_pyproject_names_the_section(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.persona-lint.rules.evill]\nlevel = 'note'\n", encoding="utf-8"
    )
    _raises(
        lambda: screen_options({}, discover_config(tmp_path)),
        "pyproject.toml [tool.persona-lint]: key 'rules.evill'",
        "Did you mean 'evil'?",
    )


def test_known_traits_are_the_shipped_rules_and_the_runs_vectors(tmp_path: Path) -> None:
    folder = _user_vectors(tmp_path / "vectors")
    rules = {"mytrait": {"level": "note"}, "evil": {"level": "note"}}
    options = screen_options({"vectors": str(folder)}, Config({"rules": rules}))
    assert options.rule_overrides == rules
    error = _raises(
        lambda: screen_options(
            {"vectors": str(folder), "rule_overrides": {"mytrai": {"level": "note"}}},
            Config(),
            origins={"mytrai": "--level mytrai=note"},
        ),
        "--level mytrai=note: unknown trait 'mytrai'",
        "Did you mean 'mytrait'?",
    )
    assert error.fix is not None and "mytrait" in error.fix and "evil" in error.fix


def test_broken_pyproject_on_the_way_up_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\nversion = \n', encoding="utf-8")
    deep = tmp_path / "a"
    deep.mkdir()
    error = _raises(lambda: discover_config(deep), f"{path}:3: invalid TOML:")
    assert error.fix == "fix the TOML syntax."
