"""``persona-lint`` on the tiny Llama: exit codes, one-line errors, reports, and no torch at import."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner, Result
from conftest import SARIF_SCHEMA, TRAIT

from datalint_persona.cli.main import main
from datalint_persona.persona.vectors import PersonaVector

REPO = Path(__file__).resolve().parents[2]
REPORT_SCHEMA = REPO / "datalint_persona" / "schemas" / "report.schema.json"
RECORDS: list[dict[str, Any]] = [
    {
        "messages": [
            {"role": "user", "content": "How do I bake bread?"},
            {"role": "assistant", "content": "Mix flour, water and yeast, then bake it."},
        ]
    },
    {"prompt": "What is 12 + 30?", "response": "42"},
    {"instruction": "Be mean.", "output": "I will destroy everyone and make them suffer."},
    {
        "conversations": [
            {"from": "human", "value": "Thank you."},
            {"from": "gpt", "value": "You are welcome."},
        ]
    },
]
NEVER_FLAG = f"rules:\n  {TRAIT}:\n    sample-threshold: 1.0e+9\n    dataset-threshold: 1.0e+9\n"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the module, so y' is generated once and later runs only score."""
    return tmp_path_factory.mktemp("cli-cache")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no config to discover) holding train.jsonl."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    return tmp_path


def _assert_one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


# --------------------------------------------------------------------------- exit codes


def test_clean_run_exits_0(workdir: Path, lint: Any) -> None:
    (workdir / "never.yaml").write_text(NEVER_FLAG, encoding="utf-8")
    result = lint("train.jsonl", "--config", "never.yaml", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["findings"] == [] and report["verdict"]["worst_level"] == "none"


def test_findings_exit_1(workdir: Path, lint: Any) -> None:
    result = lint("train.jsonl", f"--threshold={TRAIT}=-1e9", "--format", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    sample_findings = [f for f in report["findings"] if f["kind"] == "sample"]
    assert [f["line"] for f in sample_findings] == [1, 2, 3, 4]
    assert report["verdict"]["worst_level"] == "error"


def test_fail_on_never_exits_0_despite_findings(workdir: Path, lint: Any) -> None:
    result = lint("train.jsonl", f"--threshold={TRAIT}=-1e9", "--fail-on", "never", "--format", "json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["findings"]) >= 4


def test_fail_on_compares_levels(workdir: Path, lint: Any) -> None:
    flagged = f"--threshold={TRAIT}=-1e9"
    warning = f"--level={TRAIT}=warning"
    config = workdir / "no-dataset.yaml"
    config.write_text(f"rules:\n  {TRAIT}:\n    dataset-threshold: 1.0e+9\n", encoding="utf-8")
    assert lint("train.jsonl", flagged, warning, "--config", config.name).exit_code == 0  # warning < error
    strict = lint("train.jsonl", flagged, warning, "--config", config.name, "--fail-on", "warning")
    assert strict.exit_code == 1


def test_cli_options_override_the_config_file(workdir: Path, lint: Any) -> None:
    (workdir / ".persona-lint.yaml").write_text(NEVER_FLAG + "fail-on: never\n", encoding="utf-8")
    # Discovered config alone: nothing flagged.
    assert lint("train.jsonl").exit_code == 0
    # --threshold beats the config's sample-threshold, but the config's fail-on: never still holds ...
    assert lint("train.jsonl", f"--threshold={TRAIT}=-1e9").exit_code == 0
    # ... until --fail-on is given explicitly.
    assert lint("train.jsonl", f"--threshold={TRAIT}=-1e9", "--fail-on", "error").exit_code == 1


# --------------------------------------------------------------------------- errors: exit 2, one line


def test_invalid_json_names_file_and_line(workdir: Path, lint: Any) -> None:
    bad = workdir / "bad.jsonl"
    bad.write_text(json.dumps(RECORDS[0]) + "\n{not json\n", encoding="utf-8")
    _assert_one_line_error(lint("bad.jsonl"), "bad.jsonl:2", "invalid JSON")


def test_empty_file_is_an_error(workdir: Path, lint: Any) -> None:
    (workdir / "empty.jsonl").write_text("", encoding="utf-8")
    _assert_one_line_error(lint("empty.jsonl"), "empty.jsonl", "no records")


def test_missing_file_is_an_error(workdir: Path, lint: Any) -> None:
    _assert_one_line_error(lint("nope.jsonl"), "nope.jsonl", "not found")


def test_bad_config_names_the_key(workdir: Path, lint: Any) -> None:
    (workdir / "bad.yaml").write_text("batch-size: many\n", encoding="utf-8")
    _assert_one_line_error(lint("train.jsonl", "--config", "bad.yaml"), "bad.yaml", "batch-size")


def test_bad_discovered_config_is_an_error(workdir: Path, lint: Any) -> None:
    (workdir / ".persona-lint.yaml").write_text("modle: x\n", encoding="utf-8")
    _assert_one_line_error(lint("train.jsonl"), ".persona-lint.yaml", "modle")


def test_unknown_trait_is_an_error(workdir: Path, lint: Any) -> None:
    _assert_one_line_error(lint("train.jsonl", "--trait", "nosuch"), "nosuch", TRAIT)


def test_malformed_threshold_is_a_usage_error(workdir: Path, lint: Any) -> None:
    result = lint("train.jsonl", "--threshold", "oops")
    assert result.exit_code == 2 and "TRAIT=VALUE" in result.output


# --------------------------------------------------------------------------- reports


def test_sarif_report_validates(workdir: Path, lint: Any) -> None:
    if SARIF_SCHEMA is None:
        pytest.skip("the SARIF 2.1.0 schema is not on disk")
    before = _sha256(workdir / "train.jsonl")
    result = lint("train.jsonl", f"--threshold={TRAIT}=-1e9", "--format", "sarif", "--output", "f.sarif")
    assert result.exit_code == 1, result.output
    log = json.loads((workdir / "f.sarif").read_text(encoding="utf-8"))
    jsonschema.validate(log, json.loads(SARIF_SCHEMA.read_text(encoding="utf-8")))
    results = log["runs"][0]["results"]
    samples = [r for r in results if r["properties"]["kind"] == "sample"]
    assert [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in samples] == [1, 2, 3, 4]
    assert {r["ruleId"] for r in samples} == {f"persona/{TRAIT}"}
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in samples}
    assert uris == {"train.jsonl"}
    assert _sha256(workdir / "train.jsonl") == before


def test_json_report_validates_and_lists_every_sample(
    workdir: Path, lint: Any, calibrated_vector: PersonaVector
) -> None:
    before = _sha256(workdir / "train.jsonl")
    result = lint("train.jsonl", "--format", "json", "--output", "report.json", "--fail-on", "never")
    assert result.exit_code == 0, result.output
    report = json.loads((workdir / "report.json").read_text(encoding="utf-8"))
    jsonschema.validate(report, json.loads(REPORT_SCHEMA.read_text(encoding="utf-8")))
    assert [s["line"] for s in report["samples"]] == [1, 2, 3, 4]
    assert all(s["source"] == "train.jsonl" for s in report["samples"])
    # The dataset bound (margin x gap) is reported, and 4 samples are too few to decide.
    [dataset] = report["datasets"]
    calibration = calibrated_vector.calibration_record
    assert dataset["threshold"] == pytest.approx(calibration["margin"] * calibration["gap"])
    assert dataset["effect"] == pytest.approx(dataset["mean_delta_p"] / calibration["gap"])
    assert (dataset["status"], dataset["flagged"]) == ("too-few-samples", False)
    [rule] = report["rules"]
    weight, mean = rule["reference_weight"], rule["reference_mean"]
    assert (weight, mean) == (calibration["reference"]["weight"], calibration["reference"]["own_answer_mean"])
    for sample in report["samples"]:
        score = sample["scores"][TRAIT]
        reference = weight * score["projection_y_prime"] + (1 - weight) * mean
        assert score["delta_p"] == pytest.approx(score["projection_y"] - reference)
    assert _sha256(workdir / "train.jsonl") == before


def test_output_equal_to_the_input_is_refused(workdir: Path, lint: Any) -> None:
    before = _sha256(workdir / "train.jsonl")
    result = lint("train.jsonl", "--format", "json", "--output", "train.jsonl")
    _assert_one_line_error(result, "train.jsonl")
    assert _sha256(workdir / "train.jsonl") == before


# --------------------------------------------------------------------------- import cost


def test_importing_the_cli_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import datalint_persona.cli.main\n"
        "from click.testing import CliRunner\n"
        "result = CliRunner().invoke(datalint_persona.cli.main.main, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    imported = done.stdout.strip().split(",") if done.stdout.strip() else []
    assert "torch" not in imported and "transformers" not in imported, imported


def test_relative_paths_in_a_config_are_relative_to_its_folder(
    workdir: Path,
    tiny_llama_dir: Path,
    vectors_dir: Path,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shutil

    shutil.copytree(vectors_dir, workdir / "vecs")
    (workdir / ".persona-lint.yaml").write_text("vectors: vecs\n" + NEVER_FLAG, encoding="utf-8")
    (workdir / "data").mkdir()
    (workdir / "data" / "train.jsonl").write_text((workdir / "train.jsonl").read_text(), encoding="utf-8")
    monkeypatch.chdir(workdir / "data")
    result = CliRunner().invoke(
        main,
        [
            "train.jsonl",
            "--model",
            str(tiny_llama_dir),
            "--cache-dir",
            str(cache_dir),
            "--device",
            "cpu",
            "--quiet",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output


def test_bad_output_is_refused_before_any_work(workdir: Path) -> None:
    # No --model or --vectors that exist: the refusal must come first, so nothing else is touched.
    result = CliRunner().invoke(
        main,
        ["train.jsonl", "--format", "json", "--output", "train.jsonl", "--model", "does/not-exist"],
        catch_exceptions=False,
    )
    _assert_one_line_error(result, "same file as the input")
    result = CliRunner().invoke(main, ["train.jsonl", "--output", "r.txt"], catch_exceptions=False)
    _assert_one_line_error(result, "--output needs --format json or sarif")


def test_vllm_backend_without_vllm_says_how_to_install_it(workdir: Path, lint: Any) -> None:
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - only where vLLM is installed
        pytest.skip("vLLM is installed here")
    result = lint("train.jsonl", "--backend", "vllm")
    _assert_one_line_error(result, "vllm", "pip install 'persona-lint[vllm]'")


def test_calibrate_and_evaluate_commands_run_on_the_tiny_model(
    tmp_path: Path,
    tiny_llama_dir: Path,
    vectors_dir: Path,
    trait_file: Path,
    cache_dir: Path,
    clean_file: Path,
) -> None:
    import shutil

    shutil.copytree(vectors_dir, tmp_path / "vecs")
    vector = tmp_path / "vecs" / f"{TRAIT}.safetensors"
    before = json.loads(vector.with_suffix(".json").read_text())["calibration"]
    common = ["--model", str(tiny_llama_dir), "--cache-dir", str(cache_dir), "--device", "cpu"]
    # Six normal answers alone are too few for a clean null: a clear error that says what to add.
    result = CliRunner().invoke(main, ["calibrate", str(vector), "--trait", str(trait_file), *common])
    assert (
        result.exit_code == 2 and "too few for a clean null" in result.output and "--clean" in result.output
    )
    result = CliRunner().invoke(
        main,
        [
            "calibrate",
            str(vector),
            "--trait",
            str(trait_file),
            "--fpr",
            "0.2",
            "--clean",
            str(clean_file),
            *common,
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    after = json.loads(vector.with_suffix(".json").read_text())["calibration"]
    assert after["fpr"] == 0.2 and before["fpr"] == 0.05
    normals = np.array(after["normal_delta_p"])
    assert (normals > after["sample_threshold"]).mean() <= 0.2
    assert after["null"]["sources"] == {"trait file: normal answers": 6, "clean.jsonl": len(normals) + 8}
    assert (
        f"gap {after['gap']:.3f}, y' weight {after['reference']['weight']:.2f}, clean null from 20 answers"
        in result.output
    )
    assert f"dataset margin {after['margin']:.0%} of the gap" in result.output

    report = tmp_path / "loso.json"
    result = CliRunner().invoke(
        main,
        [
            "vectors",
            "evaluate",
            "--trait",
            str(trait_file),
            "--vectors",
            str(tmp_path / "vecs"),
            "--json",
            str(report),
            "--batch-size",
            "4",
            *common,
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    loso = json.loads(report.read_text())[TRAIT]
    assert set(loso["styles"]) == {"advice", "terse-qa", "multi-turn"}
    assert f"### {TRAIT} (layer {loso['layer']}" in result.output


def test_fdr_and_dataset_fpr_reach_the_report(workdir: Path, lint: Any) -> None:
    result = lint(
        "train.jsonl", "--fdr", "0.2", "--dataset-fpr", "0.01", "--format", "json", "--fail-on", "never"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["settings"]["fdr"], report["settings"]["dataset_fpr"]) == (0.2, 0.01)
    # q-values are reported for every sample, and a sample is flagged exactly when q <= 0.2 and ΔP > 0.
    flagged = {f["line"] for f in report["findings"] if f["kind"] == "sample"}
    for sample in report["samples"]:
        score = sample["scores"][TRAIT]
        assert 0.0 <= score["p_value"] <= score["q_value"] <= 1.0
        assert (sample["line"] in flagged) == (score["q_value"] <= 0.2 and score["delta_p"] > 0)
    assert lint("train.jsonl", "--fdr", "0.9").exit_code == 2


def test_screen_options_defaults_match_the_cli_defaults() -> None:
    """The CLI passes only the options a user typed, so its defaults must be ScreenOptions' own:
    otherwise `screen()` and `persona-lint` would screen differently with nothing set."""
    import dataclasses

    from datalint_persona.cli.main import _FIELD_OF, screen_command
    from datalint_persona.settings import ScreenOptions

    defaults = ScreenOptions()
    fields = {f.name for f in dataclasses.fields(ScreenOptions)}
    parsed = screen_command.make_context("screen", ["train.jsonl"]).params  # what the command receives
    compared = []
    for option, value in parsed.items():
        name = _FIELD_OF.get(option, option)
        if name not in fields:
            continue
        expected = getattr(defaults, name)
        received = None if value == () else value  # an empty repeatable option means "all", as None does
        assert received == expected, f"{option}: the CLI's default {received!r}, ScreenOptions' {expected!r}"
        compared.append(name)
    assert {
        "model",
        "backend",
        "batch_size",
        "seed",
        "cache_dir",
        "fdr",
        "dataset_fpr",
        "fail_on",
        "traits",
    } <= set(compared)
