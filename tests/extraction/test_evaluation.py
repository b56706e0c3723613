"""Leave-one-style-out evaluation on the tiny Llama, checked against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from datalint_persona.extraction.evaluation import collect, leave_one_style_out, markdown, variant_summary
from datalint_persona.model.loading import LoadedModel
from datalint_persona.persona.traits import TraitDefinition

LAYER = 2


@pytest.fixture(scope="module")
def loso(tiny_llama: LoadedModel, trait: TraitDefinition) -> tuple[object, dict[str, object]]:
    data = collect(tiny_llama, trait, batch_size=4, cache_dir=None)
    return data, leave_one_style_out(data, LAYER)


def test_every_style_is_held_out_once_with_all_its_pairs(
    loso: tuple[object, dict[str, object]], trait: TraitDefinition
) -> None:
    _, result = loso
    pairs = (*trait.pairs, *trait.calibration)
    styles = result["styles"]
    assert set(styles) == {p.style for p in pairs}
    for style, row in styles.items():
        assert row["n_test_pairs"] == sum(p.style == style for p in pairs)
        assert set(row["variants"]) == {
            "mean-diff, half the pairs",
            "mean-diff",
            "mean-diff, layers ±2",
            "mean-diff, norm-scaled",
            "logistic probe",
        }
        assert 0.0 <= row["tfidf_auroc"] <= 1.0


def test_mean_difference_delta_p_auroc_matches_an_independent_computation(
    loso: tuple[object, dict[str, object]],
) -> None:
    data, result = loso
    styles = np.array([p.style for p in data.pairs])
    held = styles == "advice"
    # The direction comes only from the other styles' pairs.
    direction = data.positive[~held, LAYER].mean(0) - data.negative[~held, LAYER].mean(0)
    unit = direction / np.linalg.norm(direction)
    base = data.y_prime[held, LAYER] @ unit
    pos = data.positive[held, LAYER] @ unit - base
    neg = data.negative[held, LAYER] @ unit - base
    expected = roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
    got = result["styles"]["advice"]["variants"]["mean-diff"]["delta_p"]["auroc"]
    assert got == pytest.approx(expected, abs=1e-12)


def test_markdown_lists_every_style_and_variant(loso: tuple[object, dict[str, object]]) -> None:
    _, result = loso
    table = markdown("tinyevil", result)
    for style in result["styles"]:
        assert f"| {style} |" in table
    summary = variant_summary({"tinyevil": result})
    assert "logistic probe" in summary and "| tinyevil |" in summary
