"""Find the persona vectors for a model: the shipped ones, or a user's folder or file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from datalint_persona._bundled import bundled
from datalint_persona.errors import VectorError
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.suggest import did_you_mean


def _vector_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.safetensors") if p.is_file())


def bundled_vector_folder(model_name: str) -> Path | None:
    folder = Path(str(bundled("vectors"))) / model_name
    return folder if folder.is_dir() else None


def find_vectors(
    source: str | None, model_name: str, traits: Sequence[str] | None = None
) -> list[PersonaVector]:
    """Load vectors from ``source`` (a folder or one file), or the shipped ones for ``model_name``.

    Only ``traits`` are kept when given; asking for a trait with no vector is an error.
    """
    if source is None:
        folder = bundled_vector_folder(model_name)
        if folder is None:
            raise VectorError(
                f"No persona vectors ship for model '{model_name}'.",
                fix=f"build them: persona-lint vectors build --model {model_name} --trait evil "
                "(then pass --vectors DIR), or use --model smollm2-135m-instruct.",
            )
        files = _vector_files(folder)
    else:
        path = Path(source)
        if path.is_dir():
            files = _vector_files(path)
        elif path.with_suffix(".safetensors").is_file():
            files = [path.with_suffix(".safetensors")]
        else:
            raise VectorError(f"--vectors {source}: no such file or folder.", fix="check the path.")
    vectors = [PersonaVector.load(f) for f in files]
    if traits:
        by_trait = {v.trait: v for v in vectors}
        missing = [t for t in traits if t not in by_trait]
        if missing:
            raise VectorError(
                f"No vector for trait(s) {', '.join(missing)} (available: {', '.join(sorted(by_trait)) or 'none'})."
                + did_you_mean(missing[0], by_trait),
                fix="drop them from --trait, or build them with 'persona-lint vectors build'.",
            )
        vectors = [by_trait[t] for t in traits]
    if not vectors:
        raise VectorError(f"--vectors {source}: holds no .safetensors vectors.", fix="check the path.")
    return vectors
