"""Persona vectors: one direction per layer for one trait, stored as safetensors + a JSON sidecar.

Files never hold pickles. ``trait.safetensors`` holds a single tensor ``vectors`` of shape
(num_layers + 1, hidden_size) in the layer convention of :mod:`datalint_persona.model.capture`;
``trait.json`` holds the metadata, including the sha256 of the tensor file, which is verified on load.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from datalint_persona.atomic import atomic_write_bytes
from datalint_persona.errors import VectorError

FORMAT = "persona-lint/vector/v1"
TENSOR_KEY = "vectors"


@dataclass(frozen=True)
class PersonaVector:
    """A trait's direction at every layer, plus what it was built from.

    >>> v = PersonaVector("evil", np.ones((3, 4), dtype=np.float32), {"chosen_layer": 1})
    >>> float(np.linalg.norm(v.unit(1)))
    1.0
    """

    trait: str
    vectors: np.ndarray  # (num_layers + 1, hidden_size), float32
    metadata: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    @property
    def num_layers(self) -> int:
        return int(self.vectors.shape[0]) - 1

    @property
    def hidden_size(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def chosen_layer(self) -> int:
        layer = self.metadata.get("chosen_layer")
        if not isinstance(layer, int):
            raise VectorError(
                f"Vector '{self.trait}' ({self.path}) records no chosen layer.",
                fix="set a layer in the rule config, or rebuild with 'persona-lint vectors build'.",
            )
        return layer

    @property
    def model_identity(self) -> str:
        return str(self.metadata.get("model", {}).get("identity", "unknown"))

    @property
    def calibration(self) -> dict[str, Any]:
        calibration = self.metadata.get("calibration")
        return calibration if isinstance(calibration, dict) else {}

    def unit(self, layer: int) -> np.ndarray:
        """The unit-norm direction at ``layer`` (float64)."""
        direction = self.vectors[layer].astype(np.float64)
        norm = float(np.linalg.norm(direction))
        if norm == 0.0:
            raise VectorError(f"Vector '{self.trait}' is zero at layer {layer}.", fix="rebuild it.")
        unit: np.ndarray = direction / norm
        return unit

    def with_metadata(self, **updates: Any) -> PersonaVector:
        return replace(self, metadata={**self.metadata, **updates})

    def save(self, stem: str | os.PathLike[str]) -> Path:
        """Write ``stem.safetensors`` and ``stem.json`` atomically; return the tensor path."""
        from safetensors.numpy import save

        stem_path = Path(stem)
        tensor_path = stem_path.with_suffix(".safetensors")
        data = save({TENSOR_KEY: np.ascontiguousarray(self.vectors, dtype=np.float32)})
        metadata = {
            **self.metadata,
            "format": FORMAT,
            "trait": self.trait,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "tensor_sha256": hashlib.sha256(data).hexdigest(),
        }
        atomic_write_bytes(tensor_path, data)
        sidecar = json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        atomic_write_bytes(stem_path.with_suffix(".json"), sidecar.encode("utf-8"))
        return tensor_path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PersonaVector:
        """Load a vector from its ``.safetensors`` or ``.json`` path, verifying the sha256."""
        from safetensors import SafetensorError
        from safetensors.numpy import load

        base = Path(path)
        tensor_path, sidecar_path = base.with_suffix(".safetensors"), base.with_suffix(".json")
        for needed in (tensor_path, sidecar_path):
            if not needed.is_file():
                raise VectorError(
                    f"{needed}: file not found (a vector needs both .safetensors and .json).",
                    fix="rebuild it with 'persona-lint vectors build'.",
                )
        try:
            metadata = json.loads(sidecar_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise VectorError(f"{sidecar_path}: not valid JSON ({error}).", fix="rebuild it.") from None
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise VectorError(
                f"{sidecar_path}: not a persona-lint vector sidecar (format must be '{FORMAT}').",
                fix="rebuild it with 'persona-lint vectors build'.",
            )
        data = tensor_path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != metadata.get("tensor_sha256"):
            raise VectorError(
                f"{tensor_path}: sha256 {actual[:12]}… does not match the sidecar's "
                f"{str(metadata.get('tensor_sha256'))[:12]}…; the file was changed or truncated.",
                fix="restore the file or rebuild the vector.",
            )
        try:
            tensors = load(data)
        except (SafetensorError, ValueError) as error:
            raise VectorError(
                f"{tensor_path}: unreadable safetensors ({error}).", fix="rebuild it."
            ) from None
        vectors = tensors.get(TENSOR_KEY)
        if vectors is None or vectors.ndim != 2:
            raise VectorError(
                f"{tensor_path}: expected one 2-D tensor named '{TENSOR_KEY}'.", fix="rebuild it."
            )
        expected = (metadata.get("num_layers", -2) + 1, metadata.get("hidden_size"))
        if tuple(vectors.shape) != expected:
            raise VectorError(
                f"{tensor_path}: tensor shape {tuple(vectors.shape)} disagrees with the sidecar {expected}.",
                fix="rebuild the vector.",
            )
        return cls(str(metadata["trait"]), vectors, metadata, str(tensor_path))

    def check_model(self, identity: str, num_layers: int, hidden_size: int, model_name: str) -> None:
        """Refuse a vector built for another model, size or layer convention."""
        built_for = self.metadata.get("model", {})
        where = self.path or self.trait
        if (self.num_layers, self.hidden_size) != (num_layers, hidden_size):
            raise VectorError(
                f"{where}: built for a model with {self.num_layers} layers and hidden size "
                f"{self.hidden_size} ({built_for.get('name', '?')}), but {model_name} has "
                f"{num_layers} layers and hidden size {hidden_size}.",
                fix=f"use --model {built_for.get('name', '<its model>')}, or build vectors for "
                f"{model_name} with 'persona-lint vectors build'.",
            )
        from datalint_persona.model.capture import LAYER_CONVENTION

        if self.metadata.get("layer_convention") != LAYER_CONVENTION:
            raise VectorError(
                f"{where}: unknown layer convention {self.metadata.get('layer_convention')!r}.",
                fix="rebuild the vector with this version of persona-lint.",
            )
        if self.model_identity != identity:
            raise VectorError(
                f"{where}: built for model {built_for.get('name', '?')} ({self.model_identity}), "
                f"not for {model_name} ({identity}).",
                fix=f"use --model {built_for.get('name', '<its model>')}, or build vectors for "
                f"{model_name} with 'persona-lint vectors build'.",
            )
