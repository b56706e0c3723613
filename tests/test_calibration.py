"""The calibration block of the fixture vector, checked against its own pairs and independent math."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import reference_means

from datalint_persona.models import LoadedModel
from datalint_persona.stats import bootstrap_mean_ci, threshold_at_fpr
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
    assert "dataset_thresholds" not in calibration  # dataset verdicts no longer depend on n


def test_gap_null_and_margin_from_normals_and_clean_answers(
    calibrated_vector: PersonaVector, tiny_llama: LoadedModel
) -> None:
    """Recomputed here: ΔP of the clean answers by the reference forward, the t fit by scipy."""
    from conftest import clean_samples
    from scipy.stats import t

    from datalint_persona.generation import DEFAULT_MAX_NEW_TOKENS

    calibration = calibrated_vector.calibration
    layer = calibration["layer"]
    unit = calibrated_vector.vectors[layer].astype(np.float64)
    unit /= np.linalg.norm(unit)
    normal, trait_values = np.array(calibration["normal_delta_p"]), np.array(calibration["trait_delta_p"])
    gap = trait_values.mean() - normal.mean()
    assert calibration["gap"] == pytest.approx(gap) and gap > 0
    assert calibration["y_prime"]["max_new_tokens"] == DEFAULT_MAX_NEW_TOKENS
    from datalint_persona.backends import GenerationSettings
    from datalint_persona.generation import generate_y_prime

    samples = clean_samples()
    generations, _ = generate_y_prime(
        tiny_llama, [s.prompt for s in samples], GenerationSettings(max_new_tokens=DEFAULT_MAX_NEW_TOKENS)
    )
    clean = np.array(
        [
            (
                reference_means(tiny_llama, s.prompt, s.response)[layer]
                - reference_means(tiny_llama, s.prompt, g.text or " ")[layer]
            )
            @ unit
            for s, g in zip(samples, generations, strict=True)
        ]
    )
    null = calibration["null"]
    assert null["n"] == len(normal) + len(clean)
    assert null["sources"] == {
        "trait file: normal answers": len(normal),
        "clean-b.jsonl": 7,
        "clean-a.jsonl": 7,
    }
    df, loc, scale = t.fit(np.concatenate([normal, clean]))
    if 2 <= df <= 100:
        assert (null["df"], null["loc"], null["scale"]) == pytest.approx((df, loc, scale), rel=1e-3, abs=1e-3)
    # The margin: 1.5 x the largest upper 95% bound of a clean source's mean effect, at least 0.25.
    names = np.array([s.source for s in samples])
    uppers = [bootstrap_mean_ci(normal / gap)[1]] + [
        bootstrap_mean_ci(clean[names == name] / gap)[1] for name in ("clean-a.jsonl", "clean-b.jsonl")
    ]
    assert calibration["margin"] == pytest.approx(max(0.25, 1.5 * max(uppers)), abs=1e-4)
    assert calibration["clean_effects"]["clean-a.jsonl"] == pytest.approx(
        clean[names == "clean-a.jsonl"].mean() / gap
    )


def test_confusable_and_style_breakdowns(calibrated_vector: PersonaVector, trait: TraitDefinition) -> None:
    calibration = calibrated_vector.calibration
    confusable = [p for p in trait.calibration if p.confusable is not None]
    assert calibration["confusable"]["n_pairs"] == len(confusable) == 3
    styles = {p.style for p in trait.calibration}
    assert set(calibration["by_style"]) == styles
    for style, figures in calibration["by_style"].items():
        assert figures["n_pairs"] == sum(p.style == style for p in trait.calibration)
    assert 0.0 <= calibration["lexical_overall"]["auroc"] <= 1.0
