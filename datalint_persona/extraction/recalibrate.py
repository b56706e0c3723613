"""Calibrate saved vectors again (``persona-lint calibrate``): each vector's verdicts (clean null,
gap, margin) on its trait's held-out pairs and the clean data, written back into its sidecar.

>>> CalibrateOptions(vectors=("vectors/evil.safetensors",)).reference_weight is None  # fitted
True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from datalint_persona.settings import DEFAULT_CACHE_DIR, DEFAULT_MODEL

if TYPE_CHECKING:
    from datalint_persona.persona.vectors import VectorCalibration


@dataclass(frozen=True)
class CalibrateOptions:
    """What ``persona-lint calibrate`` takes; the defaults are the command's."""

    vectors: tuple[str, ...]  # .safetensors (or .json) files, rewritten in place
    trait_file: str | None = None  # [default: each vector's trait]
    clean_files: tuple[str, ...] = ()
    model: str = DEFAULT_MODEL
    layer: int | None = None  # [default: each vector's chosen layer]
    fpr: float = 0.05
    reference_weight: float | None = None  # [default: fitted on the clean answers]
    batch_size: int = 16
    cache_dir: str = DEFAULT_CACHE_DIR
    device: str = "auto"  # a torch device, or "auto" (the GPU when torch sees one)


@dataclass(frozen=True)
class Recalibrated:
    """One vector calibrated and saved: its trait and its new calibration."""

    trait: str
    calibration: VectorCalibration


def calibrate_saved(options: CalibrateOptions) -> Iterator[Recalibrated]:
    """Calibrate and save each of ``options.vectors``, yielding each one as it is written.

    The clean data runs once, through one forward pass for every vector's layer.
    """
    from datalint_persona.extraction.build import load_clean_samples
    from datalint_persona.extraction.calibration import calibrate_vector, clean_projections
    from datalint_persona.model.loading import load_model, resolve_model
    from datalint_persona.persona.traits import load_trait, shipped_trait_path
    from datalint_persona.persona.vectors import PersonaVector, VectorCalibration

    vectors = [PersonaVector.load(path) for path in options.vectors]
    if options.layer is not None:
        vectors = [v.with_metadata(chosen_layer=options.layer) for v in vectors]
    clean_samples = load_clean_samples(options.clean_files)
    loaded = load_model(resolve_model(options.model), device=options.device)
    for vector in vectors:
        vector.check_model(loaded.identity, loaded.num_layers, loaded.hidden_size, options.model)
    clean = (
        clean_projections(
            loaded, vectors, clean_samples, batch_size=options.batch_size, cache_dir=options.cache_dir
        )
        if clean_samples
        else None
    )
    for path, vector in zip(options.vectors, vectors, strict=True):
        definition = load_trait(shipped_trait_path(options.trait_file or vector.trait))
        calibration = calibrate_vector(
            loaded,
            vector,
            definition.calibration,
            fpr=options.fpr,
            batch_size=options.batch_size,
            cache_dir=options.cache_dir,
            clean=clean,
            reference_weight=options.reference_weight,
        )
        vector.with_metadata(calibration=calibration).save(Path(path).with_suffix(""))
        yield Recalibrated(vector.trait, VectorCalibration.from_record(calibration))
