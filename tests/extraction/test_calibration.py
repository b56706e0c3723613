"""The calibration block of the fixture vector, checked against its own pairs and independent math."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import reference_means

from datalint_persona.errors import ConfigError
from datalint_persona.model.loading import LoadedModel
from datalint_persona.persona.traits import TraitDefinition
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.stats import bootstrap_mean_ci, threshold_at_fpr


def test_trait_minus_normal_delta_p_is_the_pair_contrast(
    calibrated_vector: PersonaVector, tiny_llama: LoadedModel, trait: TraitDefinition
) -> None:
    """ΔP(pos) - ΔP(neg) = proj(x, pos) - proj(x, neg): y' cancels, so this needs no generation."""
    calibration = calibrated_vector.calibration_record
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
    calibration = calibrated_vector.calibration_record
    normal = np.array(calibration["normal_delta_p"])
    assert len(normal) == len(trait.calibration) == calibration["overall"]["n_pairs"]
    assert calibration["layer"] == calibrated_vector.chosen_layer
    assert calibration["sample_threshold"] == threshold_at_fpr(normal, calibration["fpr"])
    assert (normal > calibration["sample_threshold"]).mean() <= calibration["fpr"]
    assert calibration["overall"]["fpr_at_threshold"] == (normal > calibration["sample_threshold"]).mean()
    assert calibration["normal_mean"] == pytest.approx(normal.mean())
    assert calibration["normal_std"] == pytest.approx(normal.std(ddof=1))
    assert "dataset_thresholds" not in calibration  # dataset verdicts no longer depend on n


def test_gap_null_margin_and_reference_from_normals_and_clean_answers(
    calibrated_vector: PersonaVector, tiny_llama: LoadedModel, trait: TraitDefinition
) -> None:
    """Recomputed here: every projection by the reference forward, the reference weight as the
    least-squares slope of proj(y) on proj(y') over the normal and clean answers (scipy), the t
    fit by scipy."""
    from conftest import clean_samples
    from scipy.stats import linregress, t

    from datalint_persona.model.backends import GenerationSettings
    from datalint_persona.screening.generation import DEFAULT_MAX_NEW_TOKENS, generate_y_prime

    calibration = calibrated_vector.calibration_record
    layer = calibration["layer"]
    unit = calibrated_vector.vectors[layer].astype(np.float64)
    unit /= np.linalg.norm(unit)
    assert calibration["y_prime"]["max_new_tokens"] == DEFAULT_MAX_NEW_TOKENS
    settings = GenerationSettings(max_new_tokens=DEFAULT_MAX_NEW_TOKENS)

    def projections(prompts: list, answers: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """proj(y) and proj(y') of each (prompt, answer)."""
        generations, _ = generate_y_prime(tiny_llama, prompts, settings)
        raw = [reference_means(tiny_llama, p, a)[layer] @ unit for p, a in zip(prompts, answers, strict=True)]
        own = [
            reference_means(tiny_llama, p, g.text or " ")[layer] @ unit
            for p, g in zip(prompts, generations, strict=True)
        ]
        return np.array(raw), np.array(own)

    pairs = trait.calibration
    normal_raw, pair_own = projections([p.prompt for p in pairs], [p.negative for p in pairs])
    trait_raw, _ = projections([p.prompt for p in pairs], [p.positive for p in pairs])
    samples = clean_samples()
    clean_raw, clean_own = projections([s.prompt for s in samples], [s.response for s in samples])
    slope = linregress(np.r_[pair_own, clean_own], np.r_[normal_raw, clean_raw]).slope
    weight = min(max(slope, 0.0), 1.0)
    mean = np.r_[pair_own, clean_own].mean()
    assert calibration["reference"]["weight"] == pytest.approx(weight, abs=1e-4)
    assert calibration["reference"]["own_answer_mean"] == pytest.approx(mean, abs=1e-4)

    def delta(raw: np.ndarray, own: np.ndarray) -> np.ndarray:
        return raw - (weight * own + (1 - weight) * mean)

    normal, clean = delta(normal_raw, pair_own), delta(clean_raw, clean_own)
    np.testing.assert_allclose(calibration["normal_delta_p"], normal, atol=1e-4)
    np.testing.assert_allclose(calibration["trait_delta_p"], delta(trait_raw, pair_own), atol=1e-4)
    gap = delta(trait_raw, pair_own).mean() - normal.mean()
    assert calibration["gap"] == pytest.approx(gap, abs=1e-4) and gap > 0
    null = calibration["null"]
    assert null["n"] == len(normal) + len(clean)
    assert null["sources"] == {
        "trait file: normal answers": len(normal),
        "clean-b.jsonl": 7,
        "clean-a.jsonl": 7,
    }
    # The null is the maximum-likelihood t whose scale grows for short answers, scale * sqrt(1 + c / n)
    # at n characters: no (df, loc, scale, c) found by an independent optimizer fits the values better.
    from scipy.optimize import minimize

    values = np.concatenate([normal, clean])
    lengths = np.array([len(p.negative) for p in pairs] + [len(s.response) for s in samples], dtype=float)

    def log_likelihood(df: float, loc: float, scale: float, c: float) -> float:
        return float(t.logpdf(values, df, loc=loc, scale=scale * np.sqrt(1 + c / lengths)).sum())

    stored = log_likelihood(null["df"], null["loc"], null["scale"], null["length_scale"])
    df, loc, scale = t.fit(values)
    independent = minimize(
        lambda x: -log_likelihood(min(max(x[0], 2), 100), x[1], np.exp(x[2]), abs(x[3])),
        [min(max(df, 2), 100), loc, np.log(scale), 1.0],
        method="Nelder-Mead",
        options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-9},
    )
    assert stored >= -independent.fun - 1e-3
    assert stored >= log_likelihood(min(max(df, 2), 100), loc, scale, 0.0) - 1e-6
    assert null["length_scale"] >= 0
    # The margin: 1.5 x the largest upper 95% bound of a clean source's mean effect, the model's own
    # answers (scored against their own reference) included, and at least 0.25.
    names = np.array([s.source for s in samples])
    own_answers = np.r_[delta(pair_own, pair_own), delta(clean_own, clean_own)]
    uppers = [bootstrap_mean_ci(normal / gap)[1], bootstrap_mean_ci(own_answers / gap)[1]] + [
        bootstrap_mean_ci(clean[names == name] / gap)[1] for name in ("clean-a.jsonl", "clean-b.jsonl")
    ]
    assert calibration["margin"] == pytest.approx(max(0.25, 1.5 * max(uppers)), abs=1e-3)
    assert calibration["clean_effects"]["clean-a.jsonl"] == pytest.approx(
        clean[names == "clean-a.jsonl"].mean() / gap, abs=1e-4
    )
    assert calibration["clean_effects"]["the model's own answers"] == pytest.approx(
        own_answers.mean() / gap, abs=1e-4
    )


def test_a_fixed_reference_weight_of_one_is_the_papers_delta_p(
    tiny_llama: LoadedModel, uncalibrated_vector: PersonaVector, trait: TraitDefinition
) -> None:
    """--reference-weight 1: ΔP = proj(y) - proj(y'), the own answers score exactly 0."""
    from conftest import clean_samples

    from datalint_persona.extraction.calibration import calibrate_vector, clean_projections

    clean = clean_projections(tiny_llama, [uncalibrated_vector], clean_samples(), batch_size=4)
    common = {"batch_size": 4, "cache_dir": None, "clean": clean}
    fixed = calibrate_vector(
        tiny_llama, uncalibrated_vector, trait.calibration, reference_weight=1.0, **common
    )
    assert fixed["reference"]["weight"] == 1.0
    assert fixed["clean_effects"]["the model's own answers"] == 0.0
    fitted = calibrate_vector(tiny_llama, uncalibrated_vector, trait.calibration, **common)
    # Within a pair both answers share y', so the trait-vs-normal difference does not depend on it.
    np.testing.assert_allclose(
        np.subtract(fixed["trait_delta_p"], fixed["normal_delta_p"]),
        np.subtract(fitted["trait_delta_p"], fitted["normal_delta_p"]),
        atol=1e-9,
    )
    with pytest.raises(ConfigError, match="outside 0..1"):
        calibrate_vector(tiny_llama, uncalibrated_vector, trait.calibration, reference_weight=2.0, **common)


def test_confusable_and_style_breakdowns(calibrated_vector: PersonaVector, trait: TraitDefinition) -> None:
    calibration = calibrated_vector.calibration_record
    confusable = [p for p in trait.calibration if p.confusable is not None]
    assert calibration["confusable"]["n_pairs"] == len(confusable) == 3
    styles = {p.style for p in trait.calibration}
    assert set(calibration["by_style"]) == styles
    for style, figures in calibration["by_style"].items():
        assert figures["n_pairs"] == sum(p.style == style for p in trait.calibration)
    assert 0.0 <= calibration["lexical_overall"]["auroc"] <= 1.0
