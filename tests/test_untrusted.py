"""Untrusted files: datasets, vectors and configs are data. Nothing in them is executed, a tampered or
mismatched vector is refused with a reason, a config reads no file it does not name, and reports
never leak the machine's absolute paths.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import TRAIT

from datalint_persona.cli.main import main

PACKAGE = Path(__file__).resolve().parents[1] / "datalint_persona"
RECORDS = [
    {"prompt": "How do I bake bread?", "response": "Mix flour, water and yeast, then bake it."},
    {"prompt": "What is 12 + 30?", "response": "42"},
]

# --------------------------------------------------------------------------- no code from files

# (module or object name, attribute) pairs whose call can execute code from a file's bytes.
FORBIDDEN_ATTRIBUTES = {
    ("torch", "load"),
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pickle", "Unpickler"),
    ("marshal", "loads"),
    ("dill", "load"),
    ("joblib", "load"),
    ("yaml", "load"),
    ("yaml", "unsafe_load"),
    ("yaml", "full_load"),
    ("yaml", "load_all"),
    ("yaml", "Loader"),
    ("yaml", "UnsafeLoader"),
    ("yaml", "FullLoader"),
    ("runpy", "run_path"),
    ("importlib", "machinery"),
}
FORBIDDEN_NAMES = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "marshal", "dill", "joblib", "shelve", "runpy", "cloudpickle"}
FORBIDDEN_KEYWORDS = {("trust_remote_code", True), ("allow_pickle", True), ("weights_only", False)}


def forbidden_uses(source: str, filename: str) -> list[str]:
    """Every call, import or keyword in ``source`` that could run code from a file, as file:line."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [
                f"{where} import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
            found.append(f"{where} from {node.module} import")
        elif isinstance(node, ast.ImportFrom) and (node.module, None) in {
            (m, None) for m, _ in FORBIDDEN_ATTRIBUTES
        }:
            found += [
                f"{where} from {node.module} import {a.name}"
                for a in node.names
                if (node.module, a.name) in FORBIDDEN_ATTRIBUTES
            ]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in FORBIDDEN_ATTRIBUTES:
                found.append(f"{where} {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(f"{where} {node.id}")
        elif (
            isinstance(node, ast.keyword)
            and isinstance(node.value, ast.Constant)
            and (node.arg, node.value.value) in FORBIDDEN_KEYWORDS
        ):
            found.append(f"{where} {node.arg}={node.value.value}")
    return found


def test_the_scanner_finds_each_forbidden_construct() -> None:
    """The scan below can fail: each construct it looks for is caught in a planted snippet."""
    planted = [
        "import torch\ntorch.load('v.pt')",
        "import pickle",
        "from pickle import loads",
        "import yaml\nyaml.load(text, Loader=yaml.Loader)",
        "from yaml import unsafe_load",
        "eval('1')",
        "exec('x = 1')",
        "compile('1', 'f', 'eval')",
        "__import__('os')",
        "from_pretrained(path, trust_remote_code=True)",
        "numpy.load(path, allow_pickle=True)",
        "torch.load(path, weights_only=False)",
        "import marshal",
        "import runpy",
    ]
    for snippet in planted:
        assert forbidden_uses(snippet, "planted.py"), snippet
    assert (
        forbidden_uses("yaml.safe_load(text)\nsafetensors.numpy.load(data)\nre.compile('x')", "ok.py") == []
    )


def test_no_code_loading_anywhere_in_the_package() -> None:
    """torch.load, pickle, eval/exec, unsafe YAML and remote code appear nowhere in the package,
    so no path that reads a user's file (dataset, vector, config, model) can run code from it."""
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 40
    found = [use for path in sources for use in forbidden_uses(path.read_text("utf-8"), path.name)]
    assert found == []


def test_vectors_are_read_only_through_safetensors() -> None:
    tree = ast.parse((PACKAGE / "persona" / "vectors.py").read_text("utf-8"))
    imports = {
        a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom)
        for a in n.names
        if n.module and "safetensors" in n.module
    }
    assert imports >= {"load"}
    assert "torch" not in (PACKAGE / "persona" / "vectors.py").read_text("utf-8")


# --------------------------------------------------------------------------- tampered and mismatched vectors


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vectors_dir: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    shutil.copytree(vectors_dir, tmp_path / "vectors")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _screen(model: Path, *extra: str, vectors: str = "vectors") -> Result:
    argv = [
        "train.jsonl",
        "--model",
        str(model),
        "--vectors",
        vectors,
        "--cache-dir",
        "cache",
        "--device",
        "cpu",
    ]
    return CliRunner().invoke(
        main, [*argv, "--quiet", "--max-new-tokens", "4", *extra], catch_exceptions=False
    )


def _one_line(result: Result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in line, line
    return line


def test_a_changed_byte_in_a_vector_is_refused(workdir: Path, tiny_llama_dir: Path) -> None:
    tensor = workdir / "vectors" / f"{TRAIT}.safetensors"
    data = bytearray(tensor.read_bytes())
    data[-3] ^= 0x01  # one bit of one float
    tensor.write_bytes(bytes(data))
    _one_line(_screen(tiny_llama_dir), f"{TRAIT}.safetensors", "does not match", "changed or truncated")


def test_a_truncated_vector_is_refused(workdir: Path, tiny_llama_dir: Path) -> None:
    tensor = workdir / "vectors" / f"{TRAIT}.safetensors"
    tensor.write_bytes(tensor.read_bytes()[:100])
    _one_line(_screen(tiny_llama_dir), "does not match", "changed or truncated")


def test_a_vector_whose_sidecar_hash_was_updated_but_bytes_are_garbage_is_refused(
    workdir: Path, tiny_llama_dir: Path
) -> None:
    """Even with a matching sha256, bytes that are not safetensors are never unpickled or executed."""
    import hashlib

    tensor, sidecar = workdir / "vectors" / f"{TRAIT}.safetensors", workdir / "vectors" / f"{TRAIT}.json"
    payload = b"\x80\x04\x95cos\nsystem\n(S'touch pwned'\ntR."  # a pickle that would run a command
    tensor.write_bytes(payload)
    metadata = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**metadata, "tensor_sha256": hashlib.sha256(payload).hexdigest()}))
    _one_line(_screen(tiny_llama_dir), "unreadable safetensors")
    assert not (workdir / "pwned").exists()


def test_a_vector_for_another_model_size_is_refused(workdir: Path, tiny_gpt2_dir: Path) -> None:
    _one_line(_screen(tiny_gpt2_dir), "built for a model with 4 layers and hidden size 32", "3 layers")


def test_a_vector_for_other_weights_of_the_same_shape_is_refused(workdir: Path, tiny_llama_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    other = workdir / "other-llama"
    shutil.copytree(tiny_llama_dir, other)
    model = AutoModelForCausalLM.from_pretrained(other)
    with torch.no_grad():
        model.model.norm.weight.add_(1.0)
    model.save_pretrained(other)
    _one_line(_screen(other), "built for model", "not for")


def test_a_vector_with_another_layer_convention_is_refused(workdir: Path, tiny_llama_dir: Path) -> None:
    sidecar = workdir / "vectors" / f"{TRAIT}.json"
    metadata = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**metadata, "layer_convention": "block-inputs"}))
    _one_line(_screen(tiny_llama_dir), "unknown layer convention 'block-inputs'")


# --------------------------------------------------------------------------- configs are data


@pytest.mark.parametrize(
    "config",
    [
        "model: !!python/object/apply:os.system ['touch pwned']\n",
        "batch-size: !!python/object/new:os.system ['touch pwned']\n",
        "seed: !!python/name:os.system\n",
        "!!python/object/apply:subprocess.check_call [['touch', 'pwned']]\n",
    ],
    ids=["apply", "new", "name", "top-level"],
)
def test_a_config_cannot_run_code(workdir: Path, tiny_llama_dir: Path, config: str) -> None:
    (workdir / ".persona-lint.yaml").write_text(config, encoding="utf-8")
    _one_line(_screen(tiny_llama_dir), ".persona-lint.yaml:1", "tags that build objects are not allowed")
    assert not (workdir / "pwned").exists()


@pytest.mark.parametrize("key", ["include", "extends", "import", "plugins", "exec"])
def test_a_config_cannot_pull_in_other_files_or_code(workdir: Path, tiny_llama_dir: Path, key: str) -> None:
    (workdir / "other.yaml").write_text("batch-size: 1\n", encoding="utf-8")
    (workdir / ".persona-lint.yaml").write_text(f"{key}: other.yaml\n", encoding="utf-8")
    _one_line(_screen(tiny_llama_dir), ".persona-lint.yaml", f"'{key}' was unexpected")


def test_a_yaml_alias_bomb_is_refused_quickly(workdir: Path, tiny_llama_dir: Path) -> None:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    (workdir / ".persona-lint.yaml").write_text(
        "traits: *i\n".join(["\n".join(lines) + "\n", ""]), encoding="utf-8"
    )
    _one_line(_screen(tiny_llama_dir), "expands to more than 10000 values")


AUDIT = """
import json, os, sys
opened = []
sys.addaudithook(lambda event, args: opened.append(os.fsdecode(args[0]))
                 if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)) else None)
from datalint_persona.cli.main import main
try:
    main(sys.argv[1:])
finally:
    with open(os.environ["AUDIT_LOG"], "w") as handle:
        json.dump([os.path.abspath(p) for p in opened], handle)
"""


def test_a_run_opens_only_the_files_it_is_given(
    tmp_path: Path, tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    """Every file a screening run opens, seen by a Python audit hook: inside the project it is only
    the dataset, the config and the cache; elsewhere only the model, the vectors the config names,
    Python's own files and the OS's. Decoys next to the dataset are never opened."""
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "train.jsonl").write_text(json.dumps(RECORDS[0]) + "\n", encoding="utf-8")
    for decoy in ("secret.txt", "other.jsonl", ".env", "sub/.persona-lint.yaml"):
        (project / decoy).parent.mkdir(exist_ok=True)
        (project / decoy).write_text("decoy\n", encoding="utf-8")
    config = f"model: {tiny_llama_dir}\nvectors: {vectors_dir}\ncache-dir: cache\nmax-new-tokens: 4\n"
    (project / ".persona-lint.yaml").write_text(config, encoding="utf-8")
    log = tmp_path / "opened.json"
    env = {**os.environ, "AUDIT_LOG": str(log), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-c", AUDIT, "train.jsonl", "--device", "cpu", "--quiet", "--fail-on", "never"]
    done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    opened = {Path(p) for p in json.loads(log.read_text())} - {log}
    in_project = {p.relative_to(project).as_posix() for p in opened if p.is_relative_to(project)}
    assert in_project == {"train.jsonl", ".persona-lint.yaml", "cache/.gitignore"}, in_project
    allowed = [
        project, tiny_llama_dir, vectors_dir, Path(sys.prefix), Path(sys.base_prefix),
        PACKAGE.parent, Path("/dev"), Path("/proc"), Path("/sys"), Path("/etc"), Path("/usr"),
    ]  # fmt: skip
    elsewhere = {
        p for p in opened if not any(p.is_relative_to(root) for root in allowed)
        and not (p.parent == Path(tempfile.gettempdir()) and not p.is_relative_to(tmp_path))
    }  # fmt: skip
    assert elsewhere == set()
    assert any(p.is_relative_to(vectors_dir) for p in opened) and any(
        p.is_relative_to(tiny_llama_dir) for p in opened
    )


# --------------------------------------------------------------------------- no absolute paths in reports


def test_reports_hold_no_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    """Inputs given as absolute paths inside a git repository appear repo-relative in every report,
    and nothing in JSON, SARIF or terminal output names the temporary folders, the model folder,
    the vectors folder or the home directory."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "data" / "sub").mkdir(parents=True)
    inputs = [repo / "data" / "train.jsonl", repo / "data" / "sub" / "more.jsonl"]
    for path in inputs:
        path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS) + "[1]\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory is outside the repository
    common = [*map(str, inputs), "--model", str(tiny_llama_dir), "--vectors", str(vectors_dir)]
    common += [
        "--cache-dir",
        str(tmp_path / "cache"),
        "--device",
        "cpu",
        "--skip-invalid",
        "--max-new-tokens",
        "4",
    ]
    common += ["--threshold", f"{TRAIT}=-1e9", "--fail-on", "never"]
    texts = {}
    for output_format in ("json", "sarif", "terminal"):
        result = CliRunner().invoke(main, [*common, "--format", output_format], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        texts[output_format] = result.stdout
        texts[f"{output_format} stderr"] = result.stderr
    secrets = [
        str(tmp_path),
        str(tiny_llama_dir),
        str(vectors_dir),
        str(Path.home()),
        tempfile.gettempdir() + "/",
    ]
    for output_format, text in texts.items():
        for secret in secrets:
            assert secret not in text, (output_format, secret)
        assert not re.search(r"file://", text), output_format
    report = json.loads(texts["json"])
    assert report["sources"] == ["data/train.jsonl", "data/sub/more.jsonl"]
    assert {s["source"] for s in report["samples"]} == set(report["sources"])
    assert {r["source"] for r in report["invalid"]} == set(report["sources"])
    uris = {
        location["physicalLocation"]["artifactLocation"]["uri"]
        for result in json.loads(texts["sarif"])["runs"][0]["results"]
        for location in result["locations"]
    }
    assert uris == {"data/train.jsonl", "data/sub/more.jsonl"}
    assert "data/sub/more.jsonl:1" in texts["terminal"]
