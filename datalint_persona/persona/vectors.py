"""Persona vectors: one direction per layer for one trait, stored as safetensors + a JSON sidecar.

Files never hold pickles. ``trait.safetensors`` holds a single tensor ``vectors`` of shape
(num_layers + 1, hidden_size) in the layer convention of :mod:`datalint_persona.model.capture`;
``trait.json`` holds the metadata, including the sha256 of the tensor file, which is verified on load.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from datalint_persona.atomic import atomic_write_bytes
from datalint_persona.errors import VectorError
from datalint_persona.stats import CleanNull

FORMAT = "persona-lint/vector/v1"
TENSOR_KEY = "vectors"

# Below this many stored normal ΔP values, an older sidecar without a fitted null has none.
_MIN_NORMALS_FOR_NULL = 10


@dataclass(frozen=True)
class VectorCalibration:
    """What screening and the verdicts read from a vector's calibration (the sidecar's ``calibration``).

    Every figure holds at ``layer`` only. ``null`` is the clean null of ΔP, ``gap`` the mean ΔP of
    trait answers minus that of normal answers on the held-out pairs, ``margin`` the dataset margin
    as a fraction of it. ΔP's reference is ``reference_weight`` x proj(y') plus the rest times
    ``reference_mean``, the mean projection of the model's own answers (whose ΔP null is
    ``own_answer_null``). ``y_prime`` is (max_new_tokens, temperature) of the y' it was measured
    with. The evaluation figures that ``vectors show`` prints stay in the sidecar.

    >>> VectorCalibration.from_record({"layer": 3, "gap": 2.0, "reference": {"weight": 0.4, "own_answer_mean": 1.5}})
    ... # doctest: +NORMALIZE_WHITESPACE
    VectorCalibration(layer=3, null=None, gap=2.0, margin=None, reference_weight=0.4, reference_mean=1.5,
        own_answer_null=None, y_prime=None, normal_delta_p=(), trait_delta_p=(), auroc=None, null_size=None)
    """

    layer: int | None = None
    null: CleanNull | None = None
    gap: float | None = None
    margin: float | None = None
    reference_weight: float = 1.0
    reference_mean: float = 0.0
    own_answer_null: CleanNull | None = None
    y_prime: tuple[int, float] | None = None
    normal_delta_p: tuple[float, ...] = ()
    trait_delta_p: tuple[float, ...] = ()
    auroc: float | None = None  # held-out AUROC of ΔP over all calibration pairs
    null_size: int | None = None  # how many clean answers the null was fitted to

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> VectorCalibration:
        """Read the sidecar's ``calibration`` block (of this version, or an older one)."""
        normal = tuple(float(v) for v in record.get("normal_delta_p") or ())
        trait = tuple(float(v) for v in record.get("trait_delta_p") or ())
        null = _t(record.get("null"))
        if null is None and len(normal) >= _MIN_NORMALS_FOR_NULL:
            from datalint_persona.stats import fit_clean_null

            null = fit_clean_null(normal)
        gap = record.get("gap")
        if gap is None and normal and trait:
            gap = sum(trait) / len(trait) - sum(normal) / len(normal)
        reference = record.get("reference")
        y_prime = record.get("y_prime")
        overall, stored_null = record.get("overall"), record.get("null")
        return cls(
            layer=int(record["layer"]) if record.get("layer") is not None else None,
            null=null,
            gap=None if gap is None else float(gap),
            margin=None if record.get("margin") is None else float(record["margin"]),
            reference_weight=float(reference["weight"]) if isinstance(reference, Mapping) else 1.0,
            reference_mean=float(reference["own_answer_mean"]) if isinstance(reference, Mapping) else 0.0,
            own_answer_null=_t(record.get("own_answer_null")),
            y_prime=(int(y_prime["max_new_tokens"]), float(y_prime.get("temperature", 0.0)))
            if isinstance(y_prime, Mapping) and "max_new_tokens" in y_prime
            else None,
            normal_delta_p=normal,
            trait_delta_p=trait,
            auroc=float(overall["auroc"]) if isinstance(overall, Mapping) else None,
            null_size=int(stored_null["n"])
            if isinstance(stored_null, Mapping) and "n" in stored_null
            else None,
        )


def _t(entry: object) -> CleanNull | None:
    """A stored Student t (``df``, ``loc``, ``scale``), if there is one."""
    if not isinstance(entry, Mapping):
        return None
    return CleanNull(
        float(entry["df"]), float(entry["loc"]), float(entry["scale"]), float(entry.get("length_scale", 0.0))
    )


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
    def model_name(self) -> str:
        return str(self.metadata.get("model", {}).get("name", "?"))

    @property
    def method(self) -> str:
        """How it was extracted: "contrastive" (written pairs) or "prompted" (the paper's pipeline)."""
        return str(self.metadata.get("method", "unknown"))

    @property
    def direction(self) -> str:
        """The direction estimator: "mean-difference" (the paper's) or "probe"."""
        return str(self.metadata.get("direction", "mean-difference"))

    @property
    def tensor_sha256(self) -> str:
        return str(self.metadata.get("tensor_sha256", ""))

    @property
    def calibration_record(self) -> Mapping[str, Any]:
        """The sidecar's ``calibration`` block as stored, with the evaluation figures reports print."""
        record = self.metadata.get("calibration")
        return record if isinstance(record, Mapping) else {}

    @cached_property
    def calibration(self) -> VectorCalibration:
        """The calibration the verdicts use (empty where the vector was never calibrated)."""
        return VectorCalibration.from_record(self.calibration_record)

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
