"""Config discovery and validation, and how rule file, calibration and overrides combine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from datalint_persona.config_file import discover_config, read_config_file, validate_config
from datalint_persona.errors import ConfigError
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.verdicts.rules import RuleDefault, default_rule_for, resolve_rule, shipped_rules

CALIBRATION = {
    "layer": 2,
    "sample_threshold": 0.3,
    "null": {"df": 7.0, "loc": 0.1, "scale": 0.5},
    "gap": 4.0,
    "margin": 0.3,
}


def _vector(calibration: dict[str, Any] | None = CALIBRATION) -> PersonaVector:
    metadata: dict[str, Any] = {"chosen_layer": 2}
    if calibration is not None:
        metadata["calibration"] = calibration
    return PersonaVector("evil", np.ones((5, 8), np.float32), metadata, "vectors/evil.safetensors")


def _default(**values: Any) -> RuleDefault:
    return RuleDefault(
        id="persona/evil", trait="evil", name="EvilPersonaShift", description="d", level="error", **values
    )


# --------------------------------------------------------------------------- discovery


def test_discovery_walks_up_from_a_subfolder(tmp_path: Path) -> None:
    (tmp_path / ".persona-lint.yaml").write_text("fail-on: warning\nbatch-size: 4\n", encoding="utf-8")
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    config = discover_config(deep)
    assert config.values == {"fail-on": "warning", "batch-size": 4}
    assert config.path == str((tmp_path / ".persona-lint.yaml").resolve())


def test_discovery_reads_pyproject_and_skips_one_without_the_section(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.persona-lint]\nfail-on = "note"\n[tool.persona-lint.rules.evil]\nsample-threshold = 1.5\n',
        encoding="utf-8",
    )
    inner = tmp_path / "pkg"
    (inner / "src").mkdir(parents=True)
    (inner / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    config = discover_config(inner / "src")
    assert config.values == {"fail-on": "note", "rules": {"evil": {"sample-threshold": 1.5}}}
    assert config.path is not None and config.path.endswith("pyproject.toml")
    assert Path(config.path).parent == tmp_path.resolve()


def test_the_nearest_config_wins(tmp_path: Path) -> None:
    (tmp_path / ".persona-lint.yaml").write_text("fail-on: warning\n", encoding="utf-8")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "pyproject.toml").write_text('[tool.persona-lint]\nfail-on = "never"\n', encoding="utf-8")
    assert discover_config(inner).get("fail-on") == "never"
    # In one folder, .persona-lint.yaml comes before pyproject.toml.
    (inner / ".persona-lint.yaml").write_text("fail-on: note\n", encoding="utf-8")
    assert discover_config(inner).get("fail-on") == "note"


def test_no_config_is_an_empty_one(tmp_path: Path) -> None:
    config = discover_config(tmp_path)
    assert config.values == {} and config.path is None and config.get("seed", 7) == 7


def test_empty_yaml_is_an_empty_config(tmp_path: Path) -> None:
    path = tmp_path / ".persona-lint.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    assert read_config_file(path).values == {}


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "values, key, words",
    [
        (
            {"rules": {"evil": {"sample-threshold": "high"}}},
            "rules.evil.sample-threshold",
            "not of type 'number'",
        ),
        ({"batch-size": 0}, "batch-size", "less than the minimum"),
        ({"fail-on": "sometimes"}, "fail-on", "is not one of"),
        ({"max-new-tokens": "lots"}, "max-new-tokens", "lots"),
        ({"traits": []}, "traits", "should be non-empty"),
    ],
)
def test_schema_errors_name_the_key(tmp_path: Path, values: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_config(values, "cfg.yaml")
    message = str(error.value)
    assert message.startswith(f"cfg.yaml: key '{key}':"), message
    assert words in message


def test_unknown_keys_are_named_with_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as error:
        validate_config({"modle": "x"}, "cfg.yaml")
    assert "'modle' was unexpected" in str(error.value) and "allowed keys here:" in str(error.value)
    assert "model" in error.value.fix  # type: ignore[operator]
    with pytest.raises(ConfigError) as error:
        validate_config({"rules": {"evil": {"treshold": 1}}}, "cfg.yaml")
    assert "key 'rules.evil'" in str(error.value) and "'treshold' was unexpected" in str(error.value)
    assert "sample-threshold" in error.value.fix  # type: ignore[operator]


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / ".persona-lint.yaml"
    path.write_text("fail-on: error\nrules:\n  evil: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{path.name}:\d+: invalid YAML"):
        read_config_file(path)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.persona-lint\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid TOML"):
        read_config_file(path)


def test_pyproject_errors_name_the_section(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.persona-lint]\nseed = -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[tool\.persona-lint\]: key 'seed'"):
        discover_config(tmp_path)


# --------------------------------------------------------------------------- rules


def test_calibrated_values_come_from_the_vector() -> None:
    rule = resolve_rule(_default(), _vector(), {})
    # No fixed thresholds: samples by FDR against the clean null, datasets by margin x gap.
    assert (rule.layer, rule.sample_threshold, rule.dataset_threshold) == (2, None, None)
    assert (rule.null_df, rule.calibration_mean, rule.calibration_std) == (7.0, 0.1, 0.5)
    assert (rule.gap, rule.margin) == (4.0, 0.3)
    assert rule.level == "error" and rule.enabled


def test_an_old_sidecar_gets_its_null_from_the_stored_normal_values() -> None:
    from scipy.stats import t

    normals = [float(v) for v in np.random.default_rng(0).normal(-1.0, 2.0, size=40)]
    trait = [v + 6.0 for v in normals]
    old = {"layer": 2, "sample_threshold": 3.0, "normal_delta_p": normals, "trait_delta_p": trait}
    rule = resolve_rule(_default(), _vector(old), {})
    df, loc, scale = t.fit(normals)
    expected_df = min(max(df, 2.0), 100.0)
    assert rule.null_df == pytest.approx(expected_df, rel=1e-3)
    assert rule.calibration_mean == pytest.approx(
        loc if df <= 100 else t.fit(normals, fdf=100.0)[1], rel=1e-3
    )
    assert rule.gap == pytest.approx(6.0) and rule.margin == 0.5  # the documented default margin


def test_precedence_override_then_rule_file_then_calibration() -> None:
    from_file = resolve_rule(_default(sample_threshold=0.5, dataset_threshold=0.2, margin=0.4), _vector(), {})
    assert (from_file.sample_threshold, from_file.dataset_threshold, from_file.margin) == (0.5, 0.2, 0.4)
    overridden = resolve_rule(
        _default(sample_threshold=0.5, dataset_threshold=0.2),
        _vector(),
        {
            "sample-threshold": 0.1,
            "dataset-threshold": 0.05,
            "level": "warning",
            "enabled": False,
            "margin": 0.6,
        },
    )
    assert (overridden.sample_threshold, overridden.dataset_threshold) == (0.1, 0.05)
    assert overridden.level == "warning" and overridden.enabled is False and overridden.margin == 0.6


def test_another_layer_needs_its_own_calibration() -> None:
    with pytest.raises(ConfigError, match="has no calibration at layer 3") as error:
        resolve_rule(_default(), _vector(), {"layer": 3})
    assert "rules.evil.sample-threshold" in str(error.value)
    rule = resolve_rule(_default(), _vector(), {"layer": 3, "sample-threshold": 1.0})
    assert rule.layer == 3 and rule.sample_threshold == 1.0
    assert rule.calibration_mean is None and rule.calibration_std is None  # measured at layer 2 only
    assert rule.gap is None


def test_layer_out_of_range() -> None:
    with pytest.raises(ConfigError, match="layer 9 is out of range") as error:
        resolve_rule(_default(), _vector(), {"layer": 9, "sample-threshold": 1.0})
    assert "0..4" in str(error.value)


def test_calibrated_without_calibration_says_how_to_fix_it() -> None:
    with pytest.raises(ConfigError) as error:
        resolve_rule(_default(), _vector(calibration=None), {})
    message = str(error.value)
    assert "rule persona/evil" in message and "no calibration" in message
    assert "vectors/evil.safetensors" in message
    assert "persona-lint calibrate" in message and "rules.evil.sample-threshold" in message
    # An explicit threshold is enough.
    rule = resolve_rule(_default(), _vector(calibration=None), {"sample-threshold": 2.0})
    assert rule.sample_threshold == 2.0 and rule.calibration_mean is None


def test_default_rule_for_a_user_trait() -> None:
    rule = default_rule_for("my_trait-x")
    assert rule.id == "persona/my_trait-x" and rule.name == "MyTraitXPersonaShift"
    assert (rule.layer, rule.sample_threshold, rule.dataset_threshold, rule.margin) == ("calibrated",) * 4


def test_shipped_rules_are_keyed_by_their_trait() -> None:
    for trait, rule in shipped_rules().items():
        assert rule.trait == trait and rule.level in ("note", "warning", "error")


def test_fdr_and_margin_are_config_keys() -> None:
    validate_config({"fdr": 0.1, "dataset-fpr": 0.01, "rules": {"evil": {"margin": 0.4}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="key 'fdr'"):
        validate_config({"fdr": 0.7}, "cfg.yaml")
    with pytest.raises(ConfigError, match="rules.evil"):
        validate_config({"rules": {"evil": {"margin": -1}}}, "cfg.yaml")


def test_screen_options_order_is_given_then_config_then_defaults(tmp_path: Path) -> None:
    from datalint_persona.config_file import Config
    from datalint_persona.settings import ScreenOptions, screen_options

    (tmp_path / "models" / "mine").mkdir(parents=True)
    config = Config(
        {
            "vectors": "vecs",
            "cache-dir": "cache",
            "model": "models/mine",
            "max-new-tokens": "auto",
            "traits": ["evil"],
            "batch-size": 4,
            "rules": {"evil": {"level": "warning", "sample-threshold": 1.0}},
        },
        str(tmp_path / ".persona-lint.yaml"),
    )
    options = screen_options({"batch_size": 8, "rule_overrides": {"evil": {"level": "note"}}}, config)
    assert options.vectors == str(tmp_path / "vecs") and options.cache_dir == str(tmp_path / "cache")
    assert options.model == str(tmp_path / "models" / "mine")
    assert options.max_new_tokens is None and options.traits == ("evil",)
    assert options.batch_size == 8 and options.seed == ScreenOptions().seed
    assert options.rule_overrides == {"evil": {"level": "note", "sample-threshold": 1.0}}
    hub = screen_options({}, Config({"model": "org/model"}, str(tmp_path / ".persona-lint.yaml")))
    assert hub.model == "org/model"  # not a path there: kept as written


def test_the_default_cache_is_in_the_repository_root_from_any_subfolder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Running from data/train/ must reuse the root's y' rather than start a cache of its own."""
    from datalint_persona.config_file import Config
    from datalint_persona.settings import screen_options

    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    subfolder = repo / "data" / "train"
    subfolder.mkdir(parents=True)
    monkeypatch.chdir(subfolder)
    assert screen_options({}, discover_config()).cache_dir == str(repo.resolve() / ".persona-lint-cache")
    # A worktree's or a submodule's .git is a file: that folder is the root, not the outer repo.
    (repo / "data" / ".git").write_text("gitdir: ../.git/worktrees/data\n")
    assert screen_options({}, Config()).cache_dir == str((repo / "data").resolve() / ".persona-lint-cache")
    # Outside any repository: the working directory.
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert screen_options({}, Config()).cache_dir == str(outside.resolve() / ".persona-lint-cache")


def test_an_explicit_cache_dir_wins_over_the_repository_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datalint_persona.config_file import Config
    from datalint_persona.settings import screen_options

    (tmp_path / ".git").mkdir()
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    config = Config({"cache-dir": "shared-cache"}, str(tmp_path / "sub" / ".persona-lint.yaml"))
    assert screen_options({}, config).cache_dir == str(
        tmp_path / "sub" / "shared-cache"
    )  # the config's folder
    assert screen_options({"cache_dir": "mine"}, config).cache_dir == "mine"  # the option, as typed
    assert screen_options({"cache_dir": None}, config).cache_dir is None  # --no-cache
