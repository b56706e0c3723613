"""Fixtures for tests on the real embedded model (SmolLM2-135M-Instruct, GGUF). Marked slow."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datalint_persona.model.loading import LoadedModel, load_model, resolve_model


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/slow/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def smollm() -> Iterator[LoadedModel]:
    """The real embedded model, loaded once per session (about 20 s)."""
    yield load_model(resolve_model("smollm2-135m-instruct"))
