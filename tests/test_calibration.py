"""The calibration block of the fixture vector, checked against its own pairs and independent math."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import reference_means

from datalint_persona.models import LoadedModel
from datalint_persona.stats import clean_dataset_threshold, threshold_at_fpr
from datalint_persona.traits import TraitDefinition
from datalint_persona.vectors import PersonaVector


def test_trait_minus_normal_delta_p_is_the_pair_contrast(
    calibrated_vector: PersonaVector, tiny_llama: LoadedModel, trait: TraitDefinition
) -> None:
    """ΔP(pos) - ΔP(neg) = proj(x, pos) - proj(x, neg): y' cancels, so this needs no generation."""
    calibration = calibrated_vector.calibration
    layer = calibration["layer"]
    unit = calibrated_vector.vectors[layer].astype(np.float64)
    unit /= np.linalg.norm(unit)
    for i, pair in enumerate(trait.calibration):
        contrast = (
            reference_means(tiny_llama, pair.prompt, pair.positive)[layer]
            - reference_means(tiny_llama, pair.prompt, pair.negative)[layer]
        ) @ unit
        got = calibration["trait_delta_p"][i] - calibration["normal_delta_p"][i]
        assert got == pytest.approx(contrast, abs=1e-4)


def test_thresholds_and_normal_statistics(calibrated_vector: PersonaVector, trait: TraitDefinition) -> None:
    calibration = calibrated_vector.calibration
    normal = np.array(calibration["normal_delta_p"])
    assert len(normal) == len(trait.calibration) == calibration["overall"]["n_pairs"]
    assert calibration["layer"] == calibrated_vector.chosen_layer
    assert calibration["sample_threshold"] == threshold_at_fpr(normal, calibration["fpr"])
    assert (normal > calibration["sample_threshold"]).mean() <= calibration["fpr"]
    assert calibration["overall"]["fpr_at_threshold"] == (normal > calibration["sample_threshold"]).mean()
    assert calibration["normal_mean"] == pytest.approx(normal.mean())
    assert calibration["normal_std"] == pytest.approx(normal.std(ddof=1))
    for size, value in calibration["dataset_thresholds"].items():
        assert value == clean_dataset_threshold(normal, int(size), fpr=calibration["fpr"], seed=0)
    assert set(calibration["dataset_thresholds"]) == {"3", "10"}


def test_confusable_and_style_breakdowns(calibrated_vector: PersonaVector, trait: TraitDefinition) -> None:
    calibration = calibrated_vector.calibration
    confusable = [p for p in trait.calibration if p.confusable is not None]
    assert calibration["confusable"]["n_pairs"] == len(confusable) == 3
    styles = {p.style for p in trait.calibration}
    assert set(calibration["by_style"]) == styles
    for style, figures in calibration["by_style"].items():
        assert figures["n_pairs"] == sum(p.style == style for p in trait.calibration)
    assert 0.0 <= calibration["lexical_overall"]["auroc"] <= 1.0
