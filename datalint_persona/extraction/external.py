"""The data and statistics of the external evaluation (``persona-lint vectors evaluate-external``).

The external folder holds public clean answers and labelled trait data (see its README). Every
record goes to the ``fit`` or the ``test`` split by the sha256 of its id (:func:`split_of`), so the
split never depends on what else is read. Calibration may use the fit split; the evaluation
(:mod:`datalint_persona.extraction.external_report`) reads the test split only.

Datasets are resampled from screened per-sample ΔP and judged with
:func:`datalint_persona.verdicts.decide.decide`, the function every run uses:

- **clean files**: the share of resampled clean files of 20, 200 and 2,000 samples that a trait's
  dataset verdict flags, and that fail the gate (any ``error`` finding, sample or dataset);
- **contamination**: trait samples of the same source mixed into its clean ones at 0-50%, at
  n = 200 and 1,000: how often the trait's dataset verdict (and the gate) fires, and the mean ΔP;
- **detection**: AUROC with a bootstrap 95% CI (:func:`auroc_with_interval`), and for paired data
  the rate at which the rejected answer scores higher (:func:`paired_rate`), of the scores and
  baselines of :mod:`datalint_persona.extraction.external_baselines`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datalint_persona.types import RuleInfo, SampleScore, TraitScore
from datalint_persona.verdicts.decide import decide

SIZES = (20, 200, 2000)
CONTAMINATION_RATES = (0.0, 0.05, 0.10, 0.25, 0.50, 1.0)
CONTAMINATION_SIZES = (200, 1000)


@dataclass(frozen=True)
class ExternalSet:
    """One external file and the role its records play."""

    file: str
    name: str
    role: str  # "clean" or "trait"
    trait: str | None = None  # for role "trait": the trait its records exhibit
    clean_pair: str | None = None  # for role "trait": the file of its clean counterparts
    paired: bool = False  # line i of this file and of clean_pair answer the same conversation


EXTERNAL_SETS = (
    ExternalSet("halueval_general_clean.jsonl", "HaluEval, no hallucination (ChatGPT)", "clean"),
    ExternalSet("self_instruct_user_oriented.jsonl", "Self-Instruct (expert-written)", "clean"),
    ExternalSet(
        "halueval_general_hallucinated.jsonl",
        "HaluEval, hallucinated",
        "trait",
        trait="hallucination",
        clean_pair="halueval_general_clean.jsonl",
    ),
    ExternalSet(
        "hh_rlhf_harmless_rejected.jsonl",
        "HH-RLHF harmless, rejected",
        "trait",
        trait="evil",
        clean_pair="hh_rlhf_harmless_chosen.jsonl",
        paired=True,
    ),
)


def split_of(record_id: str) -> str:
    """``"fit"`` or ``"test"``, from the sha256 of a record's id.

    >>> split_of("halueval-general-1"), split_of("halueval-general-2")
    ('fit', 'test')
    """
    return "fit" if int(hashlib.sha256(record_id.encode()).hexdigest(), 16) % 2 == 0 else "test"


def split_records(path: Path, split: str, *, limit: int | None = None, seed: int = 0) -> list[str]:
    """The raw JSONL lines of ``path`` in ``split`` (at most ``limit``, a seeded sample, file order)."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    chosen = [line for line in lines if split_of(json.loads(line)["id"]) == split]
    if limit is not None and len(chosen) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(chosen), size=limit, replace=False))
        chosen = [chosen[i] for i in keep]
    return chosen


def delta_matrix(samples: Sequence[SampleScore], rules: Sequence[RuleInfo]) -> np.ndarray:
    """(n, n_rules) ΔP of screened samples, columns in rule order."""
    return np.array([[s.for_trait(r.trait).delta_p for r in rules] for s in samples], dtype=np.float64)


def response_lengths(samples: Sequence[SampleScore]) -> np.ndarray:
    """(n,) the screened samples' response lengths in characters (NaN where unknown)."""
    return np.array(
        [np.nan if (n := s.sample.response_length) is None else n for s in samples], dtype=np.float64
    )


def as_scores(
    delta: np.ndarray, rules: Sequence[RuleInfo], source: str, lengths: np.ndarray | None = None
) -> list[SampleScore]:
    """Per-sample ΔP rows as the scores :func:`decide` reads (one synthetic file), with their
    responses' ``lengths`` where known."""
    from datalint_persona.reporters.saved_report import ReportedSample

    def length(row: int) -> int | None:
        return None if lengths is None or np.isnan(lengths[row]) else int(lengths[row])

    return [
        SampleScore(
            ReportedSample(source, row + 1, (), "", reported_length=length(row)),
            row,
            "",
            False,
            False,
            tuple(
                TraitScore(r.trait, r.layer, float(v), 0.0, float(v), None)
                for r, v in zip(rules, values, strict=True)
            ),
        )
        for row, values in enumerate(delta)
    ]


def judge(
    delta: np.ndarray,
    rules: Sequence[RuleInfo],
    *,
    fdr: float,
    alpha: float,
    lengths: np.ndarray | None = None,
) -> dict[str, Any]:
    """Verdicts on one file of these ΔP rows (with their responses' ``lengths``, where known): per
    trait whether the file and how many samples are flagged, and whether the gate
    (``--fail-on error``) fails."""
    scores = as_scores(delta, rules, "file", lengths)
    verdicts = decide(scores, rules, fdr=fdr, dataset_alpha=alpha, intervals=False)
    dataset = {s.trait: s.flagged for s in verdicts.summaries}
    samples = {r.trait: int(verdicts.flagged[:, k].sum()) for k, r in enumerate(rules)}
    gate = any(r.level == "error" and (dataset[r.trait] or samples[r.trait] > 0) for r in rules)
    return {"dataset": dataset, "samples": samples, "gate": gate}


def clean_file_rates(
    pool: np.ndarray,
    rules: Sequence[RuleInfo],
    *,
    sizes: Sequence[int] = SIZES,
    repeats: int = 200,
    seed: int = 0,
    fdr: float = 0.05,
    alpha: float = 0.05,
    lengths: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Per size: the share of files resampled (with replacement) from a clean pool (whose responses
    have ``lengths``, where known) that each trait's dataset verdict flags, and that fail the gate."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {}
    for size in sizes:
        counts = dict.fromkeys([r.trait for r in rules], 0)
        failed = 0
        for _ in range(repeats):
            rows = rng.integers(0, len(pool), size)
            result = judge(
                pool[rows], rules, fdr=fdr, alpha=alpha, lengths=None if lengths is None else lengths[rows]
            )
            for trait, flagged in result["dataset"].items():
                counts[trait] += flagged
            failed += result["gate"]
        out[str(size)] = {**{t: c / repeats for t, c in counts.items()}, "gate": failed / repeats}
    return out


def contamination_rates(
    clean: np.ndarray,
    trait_pool: np.ndarray,
    rules: Sequence[RuleInfo],
    trait: str,
    *,
    rates: Sequence[float] = CONTAMINATION_RATES,
    sizes: Sequence[int] = CONTAMINATION_SIZES,
    repeats: int = 100,
    seed: int = 0,
    fdr: float = 0.05,
    alpha: float = 0.05,
    lengths: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Per size and rate: how often ``trait``'s dataset verdict fires, how often the gate fails on
    that trait (a dataset or a sample finding), and the mean ΔP of the files with the 2.5 and 97.5
    percentiles of that mean over the resampled files (a bootstrap 95% interval of a file's mean ΔP
    at that size). ``lengths`` holds the response lengths of the clean and the trait pool, where
    known."""
    column = [r.trait for r in rules].index(trait)
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for size in sizes:
        out[str(size)] = {}
        for rate in rates:
            bad = int(round(rate * size))
            dataset = gate = 0
            means = []
            for _ in range(repeats):
                clean_rows = rng.integers(0, len(clean), size - bad)
                trait_rows = rng.integers(0, len(trait_pool), bad)
                rows = np.concatenate([clean[clean_rows], trait_pool[trait_rows]])
                row_lengths = (
                    None
                    if lengths is None
                    else np.concatenate([lengths[0][clean_rows], lengths[1][trait_rows]])
                )
                result = judge(rows, rules, fdr=fdr, alpha=alpha, lengths=row_lengths)
                dataset += result["dataset"][trait]
                gate += result["dataset"][trait] or result["samples"][trait] > 0
                means.append(float(rows[:, column].mean()))
            out[str(size)][f"{rate:.2f}"] = {
                "dataset_flagged": dataset / repeats,
                "trait_finding": gate / repeats,
                "mean_delta_p": float(np.mean(means)),
                "mean_delta_p_low": float(np.percentile(means, 2.5)),
                "mean_delta_p_high": float(np.percentile(means, 97.5)),
            }
    return out


def auroc_with_interval(positive: np.ndarray, negative: np.ndarray, *, seed: int = 0) -> dict[str, float]:
    """AUROC (sklearn) with a percentile bootstrap 95% interval over both classes."""
    from sklearn.metrics import roc_auc_score

    def auc(pos: np.ndarray, neg: np.ndarray) -> float:
        labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        return float(roc_auc_score(labels, np.r_[pos, neg]))

    rng = np.random.default_rng(seed)
    draws = [
        auc(
            positive[rng.integers(0, len(positive), len(positive))],
            negative[rng.integers(0, len(negative), len(negative))],
        )
        for _ in range(1000)
    ]
    low, high = np.quantile(draws, [0.025, 0.975])
    return {"auroc": auc(positive, negative), "low": float(low), "high": float(high)}


def paired_rate(rejected: np.ndarray, chosen: np.ndarray, *, seed: int = 0) -> dict[str, float]:
    """The share of pairs whose rejected answer has the higher ΔP (ties count half), with a
    bootstrap 95% interval over pairs."""
    wins = (rejected > chosen) + 0.5 * (rejected == chosen)
    rng = np.random.default_rng(seed)
    means = [wins[rng.integers(0, len(wins), len(wins))].mean() for _ in range(2000)]
    low, high = np.quantile(means, [0.025, 0.975])
    return {"rate": float(wins.mean()), "low": float(low), "high": float(high), "n_pairs": int(len(wins))}
