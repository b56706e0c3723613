"""The CLI run on the tiny random Llama with tiny vectors and a test-local cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from datalint_persona.cli.main import main


@pytest.fixture
def lint(tiny_llama_dir: Path, vectors_dir: Path, cache_dir: Path) -> Any:
    """``lint(*args, stdin=None)``: persona-lint with ARGS on the tiny model, quiet, on the CPU."""

    def invoke(*args: str, stdin: bytes | None = None) -> Result:
        common = [
            "--model",
            str(tiny_llama_dir),
            "--vectors",
            str(vectors_dir),
            "--cache-dir",
            str(cache_dir),
        ]
        common += ["--device", "cpu", "--quiet"]
        return CliRunner().invoke(main, [*args, *common], input=stdin, catch_exceptions=False)

    return invoke
