"""``persona-lint vectors list``: each row checked against the vector files themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TRAIT

from datalint_persona.cli.main import main
from datalint_persona.persona.vectors import PersonaVector


@pytest.fixture(autouse=True)
def _no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _list(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["vectors", "list", "--format", "json", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_lists_the_fixture_vector_as_its_files_hold_it(vectors_dir: Path) -> None:
    sidecar = json.loads((vectors_dir / f"{TRAIT}.json").read_text(encoding="utf-8"))
    [row] = _list("--vectors", str(vectors_dir))
    assert row["trait"] == sidecar["trait"] == TRAIT
    assert row["rule_id"] == f"persona/{TRAIT}" and row["level"] == "error" and row["enabled"]
    assert row["layer"] == sidecar["chosen_layer"] == sidecar["calibration"]["layer"]
    assert row["path"] == str(vectors_dir / f"{TRAIT}.safetensors")
    assert row["calibrated"] is True
    assert row["auroc"] == pytest.approx(sidecar["calibration"]["overall"]["auroc"])
    assert row["sample_policy"] == "FDR 0.05 vs clean null"
    assert row["dataset_policy"].startswith("margin ")


def test_the_config_sets_level_and_fixed_thresholds(vectors_dir: Path, tmp_path: Path) -> None:
    (tmp_path / ".persona-lint.yaml").write_text(
        f"fdr: 0.1\nrules:\n  {TRAIT}:\n    level: note\n    sample-threshold: 1.5\n"
        "    dataset-threshold: 0.25\n",
        encoding="utf-8",
    )
    [row] = _list("--vectors", str(vectors_dir))
    assert row["level"] == "note"
    assert row["sample_policy"] == "fixed ΔP > 1.5" and row["dataset_policy"] == "fixed mean ΔP > 0.25"


def test_an_uncalibrated_vector_says_so(tmp_path: Path) -> None:
    PersonaVector("mytrait", np.ones((5, 8), np.float32), {"chosen_layer": 3}).save(tmp_path / "mytrait")
    [row] = _list("--vectors", str(tmp_path))
    assert (row["trait"], row["layer"], row["calibrated"], row["auroc"]) == ("mytrait", 3, False, None)
    assert row["sample_policy"] == "uncalibrated"
    table = CliRunner().invoke(main, ["vectors", "list", "--vectors", str(tmp_path)]).stdout
    assert "mytrait" in table and "persona/mytrait" in table and "uncalibrated" in table


def test_lists_every_shipped_vector() -> None:
    from datalint_persona.persona.store import bundled_vector_folder

    folder = bundled_vector_folder("smollm2-135m-instruct")
    assert folder is not None
    rows = {row["trait"]: row for row in _list()}
    sidecars = [json.loads(p.with_suffix(".json").read_text("utf-8")) for p in folder.glob("*.safetensors")]
    assert sorted(rows) == sorted(s["trait"] for s in sidecars) and rows
    for sidecar in sidecars:
        row = rows[sidecar["trait"]]
        assert row["layer"] == sidecar["chosen_layer"]
        assert row["auroc"] == pytest.approx(sidecar["calibration"]["overall"]["auroc"])
