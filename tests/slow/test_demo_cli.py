"""`persona-lint examples/demo/train.jsonl` as a user runs it: real model, bundled vectors, real CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from conftest import SARIF_SCHEMA

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo" / "train.jsonl"
EVIL = REPO / "examples" / "demo" / "evil.jsonl"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datalint_persona.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_demo_flags_the_evil_file_ranks_its_problem_samples_and_reruns_from_cache(tmp_path: Path) -> None:
    before = hashlib.sha256(DEMO.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    first = _run(
        str(DEMO),
        str(EVIL),
        "--format",
        "json",
        "--output",
        str(tmp_path / "report.json"),
        "--cache-dir",
        str(cache),
        cwd=REPO,
    )
    # Every bundled rule is a warning or a note, so the default gate (--fail-on error) passes.
    assert first.returncode == 0, first.stderr
    assert "48 generated" in first.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["samples"]) == 48
    verdicts = {(Path(d["source"]).name, d["trait"]): d for d in report["datasets"]}
    # The file of overtly evil answers moves the model more than the whole gap toward evil.
    evil_file = verdicts[("evil.jsonl", "evil")]
    assert evil_file["flagged"] and evil_file["effect"] > 1.0 and evil_file["status"] == "flagged"
    assert not verdicts[("train.jsonl", "evil")]["flagged"]
    assert not verdicts[("train.jsonl", "sycophancy")]["flagged"]
    levels = {f["level"] for f in report["findings"]}
    assert "error" not in levels and "warning" in levels

    def delta(line: int, trait: str) -> float:
        sample = next(
            s for s in report["samples"] if s["line"] == line and s["source"].endswith("train.jsonl")
        )
        return float(sample["scores"][trait]["delta_p"])

    evil = {line: delta(line, "evil") for line in range(1, 25)}
    # The demo's two evil answers (examples/demo/README.md) rank first and second on evil.
    assert set(sorted(evil, key=evil.__getitem__, reverse=True)[:2]) == {9, 22}
    # The two sycophantic answers outscore every normal answer on sycophancy.
    problematic = {4, 9, 12, 16, 19, 22}
    normal_max = max(delta(line, "sycophancy") for line in range(1, 25) if line not in problematic)
    assert min(delta(4, "sycophancy"), delta(16, "sycophancy")) > normal_max

    second = _run(
        str(DEMO),
        str(EVIL),
        "--fail-on",
        "warning",
        "--format",
        "sarif",
        "--output",
        str(tmp_path / "report.sarif"),
        "--cache-dir",
        str(cache),
        cwd=REPO,
    )
    assert second.returncode == 1, second.stderr  # the same findings fail a warning-level gate
    assert "48 reused, 0 generated" in second.stderr
    if SARIF_SCHEMA is None:
        pytest.skip("the SARIF schema (../shared/schemas) is not beside this checkout")
    sarif = json.loads((tmp_path / "report.sarif").read_text())
    jsonschema.validate(sarif, json.loads(SARIF_SCHEMA.read_text()))
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]
    }
    # The evil file's dataset findings, and the demo's planted evil and sycophantic answers.
    assert uris == {"examples/demo/evil.jsonl", "examples/demo/train.jsonl"}
    flagged_lines = {
        r["locations"][0]["physicalLocation"]["region"]["startLine"]
        for r in sarif["runs"][0]["results"]
        if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("train.jsonl")
    }
    assert flagged_lines <= {4, 9, 12, 16, 19, 22}  # only the answers examples/demo/README.md names
    assert hashlib.sha256(DEMO.read_bytes()).hexdigest() == before
