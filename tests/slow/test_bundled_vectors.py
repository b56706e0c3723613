"""The shipped vectors: built for the embedded model, and reproducible from traits/ by `make vectors`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datalint_persona.extraction.contrastive import build_contrastive
from datalint_persona.model.loading import LoadedModel
from datalint_persona.persona.store import find_vectors
from datalint_persona.persona.traits import load_pair_file, load_trait, shipped_trait_path
from datalint_persona.screening.generation import DEFAULT_MAX_NEW_TOKENS
from datalint_persona.verdicts.rules import resolve_rule, shipped_rules

TRAITS = {"evil", "sycophancy", "hallucination", "impolite", "apathetic", "humorous", "optimistic"}


def test_every_trait_ships_a_calibrated_vector_for_the_embedded_model(smollm: LoadedModel) -> None:
    vectors = find_vectors(None, "smollm2-135m-instruct")
    assert {v.trait for v in vectors} == TRAITS
    rules = shipped_rules()
    for vector in vectors:
        vector.check_model(smollm.identity, smollm.num_layers, smollm.hidden_size, "smollm2-135m-instruct")
        calibration = vector.calibration_record
        assert calibration["layer"] == vector.chosen_layer
        # The threshold is where at most 5% of the held-out normal answers' ΔP lie above it.
        normal = np.array(calibration["normal_delta_p"])
        assert (normal > calibration["sample_threshold"]).mean() <= 0.05
        rule = resolve_rule(rules[vector.trait], vector, {})
        assert rule.layer == vector.chosen_layer
        # The verdicts' calibration: the fixed y' budget, a clean null from the trait file's normal
        # answers and both public clean sources (calibration/), the gap and the margin.
        assert calibration["y_prime"]["max_new_tokens"] == DEFAULT_MAX_NEW_TOKENS
        null = calibration["null"]
        assert set(null["sources"]) == {
            "trait file: normal answers",
            "halueval_general_clean.fit.jsonl",
            "self_instruct_user_oriented.fit.jsonl",
        }
        assert null["n"] == 64 + 300 + 117 and null["scale"] > 0
        gap = np.mean(calibration["trait_delta_p"]) - np.mean(calibration["normal_delta_p"])
        assert calibration["gap"] == rule.gap == pytest.approx(gap) and gap > 0
        assert rule.sample_threshold is None and rule.margin == calibration["margin"] >= 0.25
        assert (rule.calibration_mean, rule.calibration_std) == (null["loc"], null["scale"])
        # The scale grows for short answers by the fitted length scale (0: length does not matter).
        assert null["length_scale"] >= 0 and rule.null_length_scale == null["length_scale"]
        # The reference was fitted on those clean answers (a vector calibrated before the fit has
        # none: the paper's ΔP, weight 1); below weight 1 the own answers get a null of their own.
        reference = calibration.get("reference", {"weight": 1.0, "own_answer_mean": 0.0})
        assert 0.0 <= reference["weight"] <= 1.0
        assert (rule.reference_weight, rule.reference_mean) == (
            reference["weight"],
            reference["own_answer_mean"],
        )
        assert (rule.own_answer_null is not None) == (reference["weight"] < 1.0)


def test_bundled_vectors_name_the_pair_files_make_vectors_passes() -> None:
    """`make vectors` passes training/TRAIT.*.jsonl as --extra-pairs TRAIT=FILE (sorted names)."""
    training = Path(__file__).resolve().parents[2] / "training"
    for vector in find_vectors(None, "smollm2-135m-instruct"):
        files = sorted(training.glob(f"{vector.trait}.*jsonl"))
        assert vector.metadata["sources"] == [
            {"name": "trait file", "pairs": 40},
            *({"name": f.name, "pairs": len(load_pair_file(f))} for f in files),
        ]


def test_a_bundled_vector_is_reproducible_from_its_trait_file(smollm: LoadedModel) -> None:
    """Sycophancy has no extra pairs: its file alone gives the shipped direction, C and layer.
    (Rebuilding evil or hallucination as well would take minutes more of the 800+ pairs' activations.)"""
    bundled = find_vectors(None, "smollm2-135m-instruct", ["sycophancy"])[0]
    rebuilt = build_contrastive(smollm, load_trait(shipped_trait_path("sycophancy")))
    assert rebuilt.metadata["sources"] == bundled.metadata["sources"]
    assert rebuilt.metadata["probe_c"] == bundled.metadata["probe_c"]
    assert rebuilt.metadata["chosen_layer"] == bundled.chosen_layer
    # The same direction at every layer. Another CPU's kernels round differently (a probe's fit
    # turns 1e-7 in activations into up to 1e-3 in single elements), so compare what the vector
    # is used as: its direction and norm.
    got, want = rebuilt.vectors.astype(np.float64), bundled.vectors.astype(np.float64)
    norms_got, norms_want = np.linalg.norm(got, axis=1), np.linalg.norm(want, axis=1)
    cosines = (got * want).sum(axis=1) / (norms_got * norms_want)
    assert cosines.min() > 0.9999, cosines.round(6)
    np.testing.assert_allclose(norms_got, norms_want, rtol=1e-3)
