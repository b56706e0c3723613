"""The vector builder's Python API: the same vector and calibration as its stages called by hand."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import TRAIT

from datalint_persona.errors import ConfigError
from datalint_persona.extraction.build import (
    BuildOptions,
    SteeringLayersError,
    build_vectors,
    candidate_layers,
    load_clean_samples,
)
from datalint_persona.model.loading import LoadedModel
from datalint_persona.persona.traits import TraitDefinition
from datalint_persona.persona.vectors import PersonaVector


def test_build_vectors_equals_extraction_then_calibration(
    tiny_llama: LoadedModel,
    tiny_llama_dir: Path,
    trait_file: Path,
    trait: TraitDefinition,
    uncalibrated_vector: PersonaVector,
    clean_file: Path,
    tmp_path: Path,
) -> None:
    from datalint_persona.extraction.calibration import calibrate_vector, clean_projections

    options = BuildOptions(
        traits=(str(trait_file),),
        output_dir=str(tmp_path / "out"),
        model=str(tiny_llama_dir),
        direction="mean-difference",
        batch_size=4,
        cache_dir=str(tmp_path / "cache"),
        clean_files=(str(clean_file),),
    )
    steps: list[str] = []
    written = list(build_vectors(options, status=lambda text: steps.append(text) or nullcontext()))
    assert [(w.trait, w.path) for w in written] == [(TRAIT, tmp_path / "out" / f"{TRAIT}.safetensors")]
    assert steps == [
        f"Loading {tiny_llama_dir}",
        f"{TRAIT}: extracting (contrastive)",
        "Scoring 14 clean answers",
        f"{TRAIT}: calibrating on {len(trait.calibration)} pairs",
    ]
    built = PersonaVector.load(written[0].path)
    assert np.array_equal(built.vectors, uncalibrated_vector.vectors)
    assert written[0].chosen_layer == built.chosen_layer == uncalibrated_vector.chosen_layer
    clean = clean_projections(
        tiny_llama, [uncalibrated_vector], load_clean_samples([str(clean_file)]), batch_size=4
    )
    expected = calibrate_vector(tiny_llama, uncalibrated_vector, trait.calibration, batch_size=4, clean=clean)
    got = built.calibration_record
    assert got["sample_threshold"] == pytest.approx(expected["sample_threshold"], abs=1e-5)
    assert (
        got["null"]["sources"]
        == expected["null"]["sources"]
        == {
            "trait file: normal answers": len(trait.calibration),
            "clean.jsonl": 14,
        }
    )
    assert got["margin"] == pytest.approx(expected["margin"], abs=1e-4)


def test_options_are_checked_before_the_model_loads(trait_file: Path, tmp_path: Path) -> None:
    """No model of that name exists: each error must come before it would be loaded."""
    base = BuildOptions(traits=(str(trait_file),), output_dir=str(tmp_path), model="no-such-model")
    with pytest.raises(ConfigError, match="--method prompted needs --judge-url and --judge-model"):
        next(build_vectors(replace(base, select_layer="steering")))
    with pytest.raises(ConfigError, match="expected TRAIT=FILE"):
        next(build_vectors(replace(base, extra_pairs=("pairs.jsonl",))))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("4,x", "'4,x' is not a comma-separated list of layers"),
        ("4,13", r"layers must lie in 0\.\.12"),
        (",", "0..12"),
    ],
)
def test_bad_steering_layers_are_refused(spec: str, message: str) -> None:
    with pytest.raises(SteeringLayersError, match=message):
        candidate_layers(spec, 13)
