"""The probe's C, chosen by holding out one answer style at a time, against sklearn's own CV."""

from __future__ import annotations

import numpy as np
import pytest

from datalint_persona.extraction.contrastive import choose_probe_c, source_weights


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(n, 7, 12) activations of 3 styles: one shared trait feature, and per style a feature that
    separates the pairs of that style only (which a weakly regularized probe leans on)."""
    rng = np.random.default_rng(seed)
    groups = [g for g in ("a", "b", "c") for _ in range(20)]
    n, layers, width = len(groups), 7, 12
    positive = rng.standard_normal((n, layers, width))
    negative = rng.standard_normal((n, layers, width))
    positive[:, :, 0] += 0.8
    for k, g in enumerate(("a", "b", "c")):
        rows = np.array([x == g for x in groups])
        positive[rows, :, 1 + k] += 2.5
    return positive, negative, groups


def test_held_out_auroc_matches_sklearn_leave_one_group_out() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import LeaveOneGroupOut
    from sklearn.preprocessing import StandardScaler

    positive, negative, groups = _data()
    weights = source_weights([20, 40])
    choice = choose_probe_c(positive, negative, groups, weights=weights, candidates=(0.01, 1.0))
    assert choice is not None and choice.groups == 3
    x_groups = np.array(groups * 2)
    labels = np.r_[np.ones(len(groups)), np.zeros(len(groups))]
    sample_weight = np.r_[weights, weights]
    for c in (0.01, 1.0):
        aurocs = []
        for train, test in LeaveOneGroupOut().split(np.zeros(len(labels)), labels, x_groups):
            for layer in choice.layers:
                x = np.concatenate([positive[:, layer], negative[:, layer]])
                scaler = StandardScaler().fit(x[train])
                model = LogisticRegression(C=c, max_iter=5000).fit(
                    scaler.transform(x[train]), labels[train], sample_weight=sample_weight[train]
                )
                aurocs.append(roc_auc_score(labels[test], model.decision_function(scaler.transform(x[test]))))
        assert choice.held_out_auroc[c] == pytest.approx(np.mean(aurocs), abs=1e-9)
    assert choice.c == max((0.01, 1.0), key=lambda c: choice.held_out_auroc[c])
    assert choice.layers == (2, 3, 4)  # a third, half and two thirds of 6 layers


def test_nothing_to_hold_out_with_one_group() -> None:
    positive, negative, _ = _data()
    assert choose_probe_c(positive, negative, ["a"] * len(positive)) is None


def test_ties_go_to_the_stronger_regularization() -> None:
    rng = np.random.default_rng(1)
    groups = [g for g in ("a", "b") for _ in range(10)]
    positive, negative = np.zeros((20, 4, 3)), np.zeros((20, 4, 3))
    positive[:, :, 0], negative[:, :, 0] = 1.0, -1.0  # one clean feature: every C ranks perfectly
    positive[:, :, 1:] = negative[:, :, 1:] = rng.standard_normal((20, 4, 2))
    choice = choose_probe_c(positive, negative, groups, candidates=(1.0, 0.01, 0.1))
    assert choice is not None and set(choice.held_out_auroc.values()) == {1.0} and choice.c == 0.01
