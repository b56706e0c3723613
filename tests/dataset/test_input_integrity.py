"""Nothing persona-lint runs changes its inputs, and reports are tied to the exact data they describe.

Every file a command reads (datasets in each format, the config, the model folder, the vectors,
the trait file) is hashed before and after each command in ``COMMANDS``; a report path that names
an input (directly, through a symlink or a hard link) is refused before any work.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import TRAIT

from datalint_persona.cli.main import main

RECORDS = [
    {"prompt": "How do I bake bread?", "response": "Mix flour, water and yeast, then bake it."},
    {"instruction": "Be mean.", "output": "I will destroy everyone and make them suffer."},
    {
        "messages": [
            {"role": "user", "content": "Thank you."},
            {"role": "assistant", "content": "You are welcome."},
        ]
    },
]
FORMATS = ("jsonl", "json", "csv", "parquet")


def _write_datasets(folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = [
        {"prompt": "How do I bake bread?", "response": "Mix flour."},
        {"prompt": "Hi", "response": "Hello!"},
    ]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    (folder / "train.json").write_text(json.dumps(RECORDS, indent=1), encoding="utf-8")
    (folder / "train.csv").write_text(
        "prompt,response\r\n" + "".join(f'"{r["prompt"]}","{r["response"]}"\r\n' for r in flat),
        encoding="utf-8",
    )
    pq.write_table(pa.Table.from_pylist(flat), folder / "train.parquet")


def _digests(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (files or folders), by path."""
    found: dict[str, str] = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vectors_dir: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "data").mkdir()
    _write_datasets(tmp_path / "data")
    shutil.copytree(vectors_dir, tmp_path / "vectors")
    (tmp_path / ".persona-lint.yaml").write_text("batch-size: 2\nmax-new-tokens: 4\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _lint(model: Path, *args: str) -> Result:
    common = ["--model", str(model), "--vectors", "vectors", "--cache-dir", "cache", "--device", "cpu"]
    return CliRunner().invoke(main, [*args, *common], catch_exceptions=False)


def _commands(model: Path, trait_file: Path) -> list[tuple[str, list[str], int]]:
    """(name, argv, expected exit code) of every command whose inputs are hashed."""
    lint = ["--model", str(model), "--vectors", "vectors", "--cache-dir", "cache", "--device", "cpu"]
    data = [f"data/train.{suffix}" for suffix in FORMATS]
    commands: list[tuple[str, list[str], int]] = [
        (f"screen {suffix}", [f"data/train.{suffix}", *lint, "--fail-on", "never"], 0) for suffix in FORMATS
    ]
    commands += [
        (
            "screen all formats, JSON report",
            [*data, *lint, "--format", "json", "-o", "r.json", "--fail-on", "never"],
            0,
        ),
        (
            "screen, SARIF report",
            # A threshold below every ΔP: findings whatever the tiny model scores, so exit 1.
            [
                "data/train.jsonl",
                *lint,
                "--threshold",
                f"{TRAIT}=-1000",
                "--format",
                "sarif",
                "-o",
                "r.sarif",
            ],
            1,
        ),
        ("screen, JSON to stdout", ["data/train.csv", *lint, "--format", "json", "--fail-on", "never"], 0),
        ("validate", ["validate", *data], 0),
        ("vectors show", ["vectors", "show", f"vectors/{TRAIT}.safetensors"], 0),
        ("traits validate", ["traits", "validate", str(trait_file)], 0),
    ]
    commands += [
        (f"screen -o = input {suffix}", [*data, *lint, "--format", "json", "-o", f"data/train.{suffix}"], 2)
        for suffix in FORMATS
    ]
    commands += [
        ("screen -o = symlink to input", [*data, *lint, "--format", "sarif", "-o", "link.sarif"], 2),
        ("screen -o = hard link to input", [*data, *lint, "--format", "json", "-o", "hard.json"], 2),
    ]
    return commands


def test_no_command_changes_any_input(repo: Path, tiny_llama_dir: Path, trait_file: Path) -> None:
    os.symlink(repo / "data" / "train.csv", repo / "link.sarif")
    os.link(repo / "data" / "train.json", repo / "hard.json")
    inputs = (repo / "data", repo / "vectors", repo / ".persona-lint.yaml", tiny_llama_dir, trait_file)
    commands = _commands(tiny_llama_dir, trait_file)
    for name, argv, expected in commands:
        before = _digests(*inputs)
        result = CliRunner().invoke(main, argv, catch_exceptions=False)
        assert result.exit_code == expected, (name, result.output[-2000:])
        if expected == 2:
            assert "would destroy the dataset" in result.stderr, (name, result.stderr)
        assert _digests(*inputs) == before, name
    assert len(commands) == 16  # docs/reliability.md quotes this count


def test_calibrate_changes_only_the_vector_sidecar(
    repo: Path, tiny_llama_dir: Path, trait_file: Path, clean_file: Path
) -> None:
    """calibrate writes its result into the vector's .json; the tensor, trait and model stay as they were."""
    vector = repo / "vectors" / f"{TRAIT}.safetensors"
    kept = (vector, trait_file, tiny_llama_dir, repo / "data", clean_file)
    before = _digests(*kept)
    argv = [
        "calibrate",
        str(vector),
        "--trait",
        str(trait_file),
        "--fpr",
        "0.2",
        "--clean",
        str(clean_file),
        "--model",
        str(tiny_llama_dir),
    ]
    result = CliRunner().invoke(
        main, [*argv, "--cache-dir", "cache", "--device", "cpu"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert _digests(*kept) == before
    assert json.loads(vector.with_suffix(".json").read_text())["calibration"]["fpr"] == 0.2


def test_reports_record_each_input_sha256(repo: Path, tiny_llama_dir: Path) -> None:
    data = [f"data/train.{suffix}" for suffix in FORMATS]
    expected = {path: hashlib.sha256((repo / path).read_bytes()).hexdigest() for path in data}

    result = _lint(tiny_llama_dir, *data, "--format", "json", "-o", "r.json", "--fail-on", "never")
    assert result.exit_code == 0, result.output
    report = json.loads((repo / "r.json").read_text(encoding="utf-8"))
    assert {entry["path"]: entry["sha256"] for entry in report["inputs"]} == expected
    assert [entry["path"] for entry in report["inputs"]] == data

    result = _lint(tiny_llama_dir, *data, "--format", "sarif", "-o", "r.sarif", "--fail-on", "never")
    assert result.exit_code == 0, result.output
    artifacts = json.loads((repo / "r.sarif").read_text(encoding="utf-8"))["runs"][0]["artifacts"]
    assert {a["location"]["uri"]: a["hashes"]["sha-256"] for a in artifacts} == expected
    assert {a["location"]["uriBaseId"] for a in artifacts} == {"%SRCROOT%"}

    # One changed byte in the data gives another digest in the next report.
    path = repo / "data" / "train.jsonl"
    path.write_bytes(path.read_bytes().replace(b"bread", b"bre4d"))
    result = _lint(tiny_llama_dir, "data/train.jsonl", "--format", "json", "--fail-on", "never")
    [entry] = json.loads(result.stdout)["inputs"]
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() != expected["data/train.jsonl"]


def test_validate_prints_the_same_digests(repo: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "data/train.jsonl", "data/train.parquet", "--json"])
    assert result.exit_code == 0, result.output
    sources = json.loads(result.stdout)["sources"]
    assert [(s["path"], s["samples"], s["invalid"]) for s in sources] == [
        ("data/train.jsonl", 3, 0),
        ("data/train.parquet", 2, 0),
    ]
    for source in sources:
        assert source["sha256"] == hashlib.sha256((repo / source["path"]).read_bytes()).hexdigest()
