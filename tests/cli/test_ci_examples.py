"""The CI examples select exactly the dataset files, checked in real git repositories.

The GitHub Actions workflow (examples/github-actions/persona-lint.yml) and the GitLab CI job in the
README are parsed as YAML and their own shell runs against a clone of a throw-away repository, with
a stand-in ``persona-lint`` on PATH that records the arguments it was given.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from datalint_persona.cli.report_outputs import pair_outputs

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "examples" / "github-actions" / "persona-lint.yml"

ON_MAIN = {
    "data/old.jsonl": "{}\n",  # a dataset the pull request does not touch
    "data/deleted.jsonl": "{}\n",  # one it deletes
    "data/README.md": "# data\n",
    "package.json": "{}\n",
    "persona-lint-baseline.json": "{}\n",
}
ON_BRANCH = {
    "data/train.jsonl": "{}\n",
    "data/sft/v2/a.jsonl": "{}\n",
    "data/sft/v2/meta.json": "{}\n",
    "data/sft/b.csv": "prompt,response\n",
    "data/with space.jsonl": "{}\n",
    "data/sft/v2/notes.txt": "notes\n",
    "data/x.jsonl.bak": "{}\n",
    "src/data/x.jsonl": "{}\n",  # a data file outside data/
    "package.json": '{"name": "changed"}\n',
    "persona-lint-baseline.json": '{"changed": true}\n',
}
RECORDER = '#!/bin/sh\nprintf "%s\\n" "$@" > "$PERSONA_LINT_ARGS"\nexit 3\n'


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A clone of a repository whose main has ON_MAIN; HEAD is a branch adding ON_BRANCH."""
    origin = tmp_path / "origin"
    origin.mkdir()
    _git(origin, "init", "-q", "-b", "main")
    _write(origin, ON_MAIN)
    _git(origin, "add", "-A")
    _git(origin, "commit", "-q", "-m", "main")
    work = tmp_path / "work"
    _git(tmp_path, "clone", "-q", str(origin), str(work))
    _git(work, "checkout", "-q", "-b", "feature")
    _write(work, ON_BRANCH)
    _git(work, "rm", "-q", "data/deleted.jsonl")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "feature")
    return work


def _run(script: str, cwd: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``script`` with bash -e as a CI runner would; return the run and persona-lint's arguments."""
    bin_dir = cwd.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    recorder = bin_dir / "persona-lint"
    recorder.write_text(RECORDER, encoding="utf-8")
    recorder.chmod(0o755)
    args_file = cwd.parent / "args.txt"
    args_file.unlink(missing_ok=True)
    full_env = {
        **os.environ,
        **env,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PERSONA_LINT_ARGS": str(args_file),
    }
    done = subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=full_env, capture_output=True, text=True)
    args = args_file.read_text(encoding="utf-8").splitlines() if args_file.exists() else []
    return done, args


def _datasets(args: list[str]) -> list[str]:
    """persona-lint's positional arguments (the files), sorted; every option here takes a value."""
    files, rest = [], iter(args)
    for arg in rest:
        if arg.startswith("-"):
            next(rest)
        else:
            files.append(arg)
    return sorted(files)


def _github_step() -> tuple[dict[str, str], str]:
    """The workflow's env (workflow and step) and the screening step's script."""
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    (step,) = [step for step in steps if step.get("id") == "screen"]
    env = {**workflow.get("env", {}), **step.get("env", {})}
    return {key: str(value) for key, value in env.items()}, step["run"]


def _github_expressions(env: dict[str, str], event: str) -> dict[str, str]:
    values = {"github.event_name": event, "github.base_ref": "main"}

    def substitute(match: re.Match[str]) -> str:
        return values[match.group(1)]  # a KeyError here: the test needs to know the new expression

    return {key: re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", substitute, value) for key, value in env.items()}


SCREENED_ON_PUSH = [
    "data/old.jsonl",
    "data/sft/b.csv",
    "data/sft/v2/a.jsonl",
    "data/sft/v2/meta.json",
    "data/train.jsonl",
    "data/with space.jsonl",
]
SCREENED_ON_PULL_REQUEST = [name for name in SCREENED_ON_PUSH if name != "data/old.jsonl"]


@pytest.mark.parametrize(
    ("event", "expected"), [("push", SCREENED_ON_PUSH), ("pull_request", SCREENED_ON_PULL_REQUEST)]
)
def test_github_workflow_screens_exactly_the_dataset_files(
    checkout: Path, event: str, expected: list[str]
) -> None:
    env, script = _github_step()
    assert "${{" not in script  # expressions go through env, never into the shell text
    output = checkout.parent / "github_output"
    done, args = _run(script, checkout, {**_github_expressions(env, event), "GITHUB_OUTPUT": str(output)})
    assert done.returncode == 0, done.stderr
    base = _git(checkout, "merge-base", "origin/main", "HEAD").strip()
    if event == "pull_request":
        assert args[args.index("--changed-since") + 1] == base
    else:
        assert "--changed-since" not in args
    assert _datasets(args) == expected
    formats = [args[i + 1] for i, arg in enumerate(args) if arg == "--format"]
    outputs = [args[i + 1] for i, arg in enumerate(args) if arg == "--output"]
    assert formats == ["sarif", "github", "json"]  # one run, each format with its file
    assert outputs == ["persona-lint.sarif", "persona-lint-annotations.txt", "persona-lint.json"]
    assert len(pair_outputs(formats, outputs, _datasets(args))) == 3  # the real CLI accepts the pairing
    assert output.read_text(encoding="utf-8") == "status=3\n"  # persona-lint's exit code is passed on


def test_github_workflow_passes_when_no_dataset_changed(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q", "-b", "main")
    _write(tmp_path, {"package.json": "{}\n", "src/data/x.jsonl": "{}\n"})
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "no data")
    env, script = _github_step()
    output = tmp_path.parent / "github_output_none"
    done, args = _run(script, tmp_path, {**_github_expressions(env, "push"), "GITHUB_OUTPUT": str(output)})
    assert done.returncode == 0, done.stderr
    assert args == [] and "No dataset files to screen." in done.stdout
    assert output.read_text(encoding="utf-8") == "status=0\n"


def _gitlab_job() -> dict[str, object]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### GitLab CI", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    job: dict[str, object] = yaml.safe_load(block.group(1))["persona-lint"]
    return job


def test_gitlab_job_screens_exactly_the_changed_jsonl_files(checkout: Path) -> None:
    job = _gitlab_job()
    script = job["script"]
    assert isinstance(script, list)
    lines = [line for line in script if not line.startswith("pip install")]
    done, args = _run("\n".join(lines), checkout, {"CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"})
    assert done.returncode == 123, done.stderr  # xargs's code for "the command failed": the job fails
    assert _datasets(args) == [name for name in SCREENED_ON_PULL_REQUEST if name.endswith(".jsonl")]
    assert args[args.index("--changed-since") + 1] == "origin/main"
    assert args[args.index("--format") + 1] == "gitlab"
