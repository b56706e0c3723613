"""Two runs with the same inputs and settings give byte-identical JSON and SARIF reports, apart from
the timestamp fields, whether y' comes from a fresh cache or a warm one.

The JSON pair runs as two separate ``persona-lint`` processes (fresh interpreter, fresh model
load), so nothing carries over in memory; the other comparisons run in this process, which is
cheaper. The thread count is pinned to one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TRAIT

from datalint_persona.cli.main import main

# The only fields that may differ: JSON started_at/finished_at, SARIF startTimeUtc/endTimeUtc.
TIMESTAMPS = re.compile(r'"(started_at|finished_at|startTimeUtc|endTimeUtc)": "[^"]*"')
RECORDS = [
    {"prompt": "How do I bake bread?", "response": "Mix flour, water and yeast, then bake it."},
    {"instruction": "Be mean.", "output": "I will destroy everyone and make them suffer."},
    {"prompt": "What is 12 + 30?", "response": "42"},
    {
        "messages": [
            {"role": "user", "content": "Thank you."},
            {"role": "assistant", "content": "You are welcome."},
        ]
    },
    ["not", "a", "record"],
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("determinism")
    (folder / ".git").mkdir()
    lines = [json.dumps(r) for r in RECORDS]
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "b.json").write_text(json.dumps(RECORDS[:4][::-1]), encoding="utf-8")
    return folder


def _argv(model: Path, vectors: Path, output_format: str, cache: str, name: str) -> list[str]:
    return [
        "a.jsonl", "b.json",
        "--model", str(model), "--vectors", str(vectors), "--cache-dir", cache, "--device", "cpu",
        "--skip-invalid", "--max-new-tokens", "12", "--threshold", f"{TRAIT}=-1000", "--fail-on", "never",
        "--format", output_format, "--output", name, "--quiet",
    ]  # fmt: skip


def _in_subprocess(workdir: Path, argv: list[str], name: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "datalint_persona.cli.main", *argv]
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return (workdir / name).read_text(encoding="utf-8")


def _in_process(workdir: Path, argv: list[str], name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(workdir)
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return (workdir / name).read_text(encoding="utf-8")


def _same(first: str, second: str) -> None:
    assert len(TIMESTAMPS.findall(first)) == 2
    assert TIMESTAMPS.sub("", first) == TIMESTAMPS.sub("", second)


def test_two_processes_write_byte_identical_json(
    workdir: Path, tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    """Two processes, each with its own fresh cache: everything is computed twice."""
    first = _in_subprocess(workdir, _argv(tiny_llama_dir, vectors_dir, "json", "cache-1", "1.json"), "1.json")
    second = _in_subprocess(
        workdir, _argv(tiny_llama_dir, vectors_dir, "json", "cache-2", "2.json"), "2.json"
    )
    _same(first, second)
    document = json.loads(first)  # the comparison covers a report with content in every section
    assert len(document["samples"]) == 8 and document["invalid"] and document["findings"]


@pytest.mark.parametrize("output_format", ["json", "sarif"])
def test_fresh_and_warm_cache_runs_are_byte_identical(
    workdir: Path,
    tiny_llama_dir: Path,
    vectors_dir: Path,
    output_format: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = f"cache-{output_format}"
    fresh = _in_process(
        workdir, _argv(tiny_llama_dir, vectors_dir, output_format, cache, "f"), "f", monkeypatch
    )
    warm = _in_process(
        workdir, _argv(tiny_llama_dir, vectors_dir, output_format, cache, "w"), "w", monkeypatch
    )
    _same(fresh, warm)
    if output_format == "sarif":
        run = json.loads(fresh)["runs"][0]
        kinds = {result["properties"]["kind"] for result in run["results"]}
        assert kinds == {"sample", "invalid"} or kinds == {"sample", "invalid", "dataset"}
