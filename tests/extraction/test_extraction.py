"""Contrastive vectors against an independent mean difference, and layer selection."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import reference_means

from datalint_persona.extraction.contrastive import choose_layer, layer_statistics, pair_activations
from datalint_persona.model.loading import LoadedModel
from datalint_persona.persona.traits import TraitDefinition
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.stats import cohens_d


def test_vector_is_the_mean_difference_at_every_layer(
    tiny_llama: LoadedModel, trait: TraitDefinition, uncalibrated_vector: PersonaVector
) -> None:
    positive = np.stack([reference_means(tiny_llama, p.prompt, p.positive) for p in trait.pairs])
    negative = np.stack([reference_means(tiny_llama, p.prompt, p.negative) for p in trait.pairs])
    expected = positive.mean(axis=0) - negative.mean(axis=0)  # (L + 1, hidden)
    assert uncalibrated_vector.vectors.shape == (tiny_llama.num_layers + 1, tiny_llama.hidden_size)
    np.testing.assert_allclose(uncalibrated_vector.vectors, expected, atol=2e-5, rtol=1e-5)
    assert np.linalg.norm(expected, axis=1).min() > 1e-2  # not trivially zero anywhere


def test_pair_activations_keep_positive_and_negative_apart(
    tiny_llama: LoadedModel, trait: TraitDefinition
) -> None:
    pairs = trait.pairs[:3]
    positive, negative = pair_activations(tiny_llama, pairs, batch_size=2)
    for index, pair in enumerate(pairs):
        expected_positive = reference_means(tiny_llama, pair.prompt, pair.positive)
        expected_negative = reference_means(tiny_llama, pair.prompt, pair.negative)
        np.testing.assert_allclose(positive[index], expected_positive, atol=2e-5)
        np.testing.assert_allclose(negative[index], expected_negative, atol=2e-5)


def test_an_unpaired_negative_is_read_after_its_own_conversation(tiny_llama: LoadedModel) -> None:
    from datalint_persona.extraction.contrastive import pair_activations
    from datalint_persona.persona.traits import TraitPair
    from datalint_persona.types import Message

    asked, other = (Message("user", "Is the sky green?"),), (Message("user", "Name a river."),)
    pair = TraitPair("p", "s", asked, "Yes, always.", "The Nile.", negative_prompt=other)
    positive, negative = pair_activations(tiny_llama, [pair], batch_size=2)
    np.testing.assert_allclose(positive[0], reference_means(tiny_llama, asked, "Yes, always."), atol=1e-5)
    np.testing.assert_allclose(negative[0], reference_means(tiny_llama, other, "The Nile."), atol=1e-5)


def test_metadata_records_how_it_was_built(
    uncalibrated_vector: PersonaVector, tiny_llama: LoadedModel, trait: TraitDefinition
) -> None:
    meta = uncalibrated_vector.metadata
    assert meta["model"] == {"name": "tiny-llama", "identity": tiny_llama.identity}
    assert meta["counts"] == {"extraction_pairs": len(trait.pairs), "held_out_pairs": len(trait.calibration)}
    assert meta["styles"] == sorted({p.style for p in trait.pairs})
    stats = meta["layer_stats"]
    assert [s["layer"] for s in stats] == list(range(tiny_llama.num_layers + 1))
    inner = [s for s in stats if 1 <= s["layer"] <= tiny_llama.num_layers - 1]
    best = max(inner, key=lambda s: s["cohens_d"])
    assert meta["chosen_layer"] == best["layer"]


def test_layer_statistics_against_independent_projections(
    tiny_llama: LoadedModel, trait: TraitDefinition, uncalibrated_vector: PersonaVector
) -> None:
    held = trait.calibration
    pos = np.stack([reference_means(tiny_llama, p.prompt, p.positive) for p in held])
    neg = np.stack([reference_means(tiny_llama, p.prompt, p.negative) for p in held])
    stats = layer_statistics(uncalibrated_vector.vectors, pos, neg, seed=0)
    for layer, entry in enumerate(stats):
        unit = uncalibrated_vector.vectors[layer].astype(np.float64)
        unit /= np.linalg.norm(unit)
        p, n = pos[:, layer] @ unit, neg[:, layer] @ unit
        squares = (len(p) - 1) * np.var(p, ddof=1) + (len(n) - 1) * np.var(n, ddof=1)
        pooled_variance = squares / (len(p) + len(n) - 2)
        pooled = np.sqrt(pooled_variance)
        assert entry["cohens_d"] == pytest.approx((p.mean() - n.mean()) / pooled, rel=1e-4)
        wins = sum(float(a > b) + 0.5 * float(a == b) for a in p for b in n)
        assert entry["auroc"] == pytest.approx(wins / (len(p) * len(n)))
        assert entry["random_d95"] >= 0
        norm = float(np.linalg.norm(uncalibrated_vector.vectors[layer]))
        assert entry["vector_norm"] == pytest.approx(norm, rel=1e-6)


def test_choose_layer_ignores_layer_zero_and_the_last_layer() -> None:
    d = {0: 50.0, 1: 0.5, 2: 3.0, 3: 2.9, 4: 99.0}
    stats = [{"layer": layer, "cohens_d": value} for layer, value in d.items()]
    assert choose_layer(stats) == 2
    stats[1]["cohens_d"] = 3.5
    assert choose_layer(stats) == 1


def test_cohens_d_sign_is_kept() -> None:
    assert cohens_d([0.0, 2.0], [2.0, 4.0]) == pytest.approx(-np.sqrt(2))


def test_pairs_longer_than_the_context_are_truncated_not_crashed(tiny_gpt2: LoadedModel) -> None:
    from datalint_persona.persona.traits import TraitPair
    from datalint_persona.types import Message

    assert tiny_gpt2.context_length == 512
    pair = TraitPair(
        "long",
        "advice",
        (Message("user", "Tell me a story."),),
        "destroy them all " * 300,
        "be kind to all " * 300,
    )
    positive, negative = pair_activations(tiny_gpt2, [pair])
    assert positive.shape == negative.shape == (1, tiny_gpt2.num_layers + 1, tiny_gpt2.hidden_size)
    assert np.isfinite(positive).all() and not np.allclose(positive, negative)


def test_probe_vector_is_an_independent_logistic_regression_direction(
    tiny_llama: LoadedModel, trait: TraitDefinition
) -> None:
    from sklearn.linear_model import LogisticRegression

    from datalint_persona.extraction.contrastive import PROBE_C_CANDIDATES, build_contrastive

    vector = build_contrastive(tiny_llama, trait, direction="probe", batch_size=4, held_out_pairs=[])
    c = vector.metadata["probe_c"]
    assert vector.metadata["direction"] == "probe" and c in PROBE_C_CANDIDATES
    assert vector.metadata["probe_c_choice"]["groups"] == len({p.style for p in trait.pairs})
    positive = np.stack([reference_means(tiny_llama, p.prompt, p.positive) for p in trait.pairs])
    negative = np.stack([reference_means(tiny_llama, p.prompt, p.negative) for p in trait.pairs])
    labels = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    for layer in range(tiny_llama.num_layers + 1):
        x = np.concatenate([positive[:, layer], negative[:, layer]]).astype(np.float64)
        mean, scale = x.mean(0), x.std(0)
        scale[scale == 0] = 1.0
        weights = LogisticRegression(C=c, max_iter=5000).fit((x - mean) / scale, labels).coef_[0] / scale
        expected = weights / np.linalg.norm(weights)
        got = vector.vectors[layer] / np.linalg.norm(vector.vectors[layer])
        assert float(got @ expected) > 0.999
        mean_difference = positive[:, layer].mean(0) - negative[:, layer].mean(0)
        assert np.linalg.norm(vector.vectors[layer]) == pytest.approx(
            np.linalg.norm(mean_difference), rel=1e-4
        )
        # It separates the training pairs in the right direction.
        assert (positive[:, layer] @ got).mean() > (negative[:, layer] @ got).mean()


def test_extra_pairs_weigh_each_source_equally(tiny_llama: LoadedModel, trait: TraitDefinition) -> None:
    """With one extra source, the mean-difference direction is the plain average of the two
    sources' mean differences, however many pairs each holds (computed independently here)."""
    from datalint_persona.extraction.contrastive import build_contrastive

    own, extra = list(trait.pairs[:2]), list(trait.pairs[2:])
    assert len(own) != len(extra)
    vector = build_contrastive(
        tiny_llama,
        trait,
        direction="mean-difference",
        batch_size=4,
        extraction_pairs=own,
        held_out_pairs=[],
        extra_pairs=[("more.jsonl", extra)],
    )

    def mean_difference(pairs: list) -> np.ndarray:
        pos = np.stack([reference_means(tiny_llama, p.prompt, p.positive) for p in pairs])
        neg = np.stack([reference_means(tiny_llama, p.prompt, p.negative) for p in pairs])
        return pos.mean(0) - neg.mean(0)

    expected = (mean_difference(own) + mean_difference(extra)) / 2
    np.testing.assert_allclose(vector.vectors, expected, atol=2e-5, rtol=1e-5)
    assert vector.metadata["sources"] == [
        {"name": "trait file", "pairs": len(own)},
        {"name": "more.jsonl", "pairs": len(extra)},
    ]
    assert vector.metadata["counts"]["extraction_pairs"] == len(trait.pairs)


def test_weighted_probe_matches_sklearn_with_sample_weights(
    tiny_llama: LoadedModel, trait: TraitDefinition
) -> None:
    from sklearn.linear_model import LogisticRegression

    from datalint_persona.extraction.contrastive import PROBE_C, probe_directions, source_weights

    weights = source_weights([1, len(trait.pairs) - 1])
    assert weights.mean() == pytest.approx(1.0) and weights[0] == pytest.approx(weights[1:].sum())
    positive = np.stack([reference_means(tiny_llama, p.prompt, p.positive) for p in trait.pairs])
    negative = np.stack([reference_means(tiny_llama, p.prompt, p.negative) for p in trait.pairs])
    got = probe_directions(positive, negative, weights=weights)
    layer = tiny_llama.num_layers
    x = np.concatenate([positive[:, layer], negative[:, layer]])
    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1.0
    labels = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    fitted = LogisticRegression(C=PROBE_C, max_iter=5000).fit(
        (x - mean) / scale, labels, sample_weight=np.r_[weights, weights]
    )
    expected = fitted.coef_[0] / scale
    assert float(got[layer] @ expected / np.linalg.norm(got[layer]) / np.linalg.norm(expected)) > 0.999
