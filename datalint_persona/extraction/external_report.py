"""The external evaluation (``persona-lint vectors evaluate-external``): screen the test split of
the external folder and report how the verdicts behave on data nobody on the project wrote.

Each test pool is screened once with :func:`datalint_persona.screening.engine.screen` (the product's
own path: y' with the calibrated settings, ΔP, and the rules as a user gets them). The figures come
from :mod:`datalint_persona.extraction.external` and
:mod:`datalint_persona.extraction.external_baselines`:

- **clean files** and **clean samples**: false flags on resampled clean files, and the share of
  samples flagged when a whole clean pool is screened as one file;
- **contamination**: trait samples mixed into their clean counterparts at 0-50%;
- **detection**: AUROC (and the paired rate for HH-RLHF) of the sample ΔP, of the paper's ΔP (y′
  alone as the reference), of the raw projection a(x, y)·v̂, and of two baselines built from the
  vector's training pairs: ΔP at layer 0 and TF-IDF + logistic regression;
- **independent pairs** (optional): the same detection figures on pairs written apart from all
  training text. :func:`markdown` turns the report into the tables the README shows.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona.extraction.external import (
    EXTERNAL_SETS,
    ExternalSet,
    clean_file_rates,
    contamination_rates,
    delta_matrix,
    judge,
    response_lengths,
    split_records,
)
from datalint_persona.extraction.external_baselines import Detection
from datalint_persona.types import RuleInfo, SampleScore

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel
    from datalint_persona.persona.traits import TraitPair
    from datalint_persona.settings import ScreenOptions

OWN_ANSWERS_FILE = "own_answers.jsonl"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ScreenedPools:
    """The screened test records of every external file (and of the model's own answers):
    the samples, their (n, n_rules) ΔP, and the enabled rules in column order."""

    samples: dict[str, list[SampleScore]]
    delta: dict[str, np.ndarray]
    rules: list[RuleInfo]

    def lengths(self, file: str) -> np.ndarray:
        """(n,) the response lengths of ``file``'s samples."""
        return response_lengths(self.samples[file])


def pair_lines(pairs: Sequence[TraitPair], side: str) -> list[str]:
    """One side ("positive" or "negative") of pairs as chat JSONL lines, for screening."""
    return [
        json.dumps(
            {
                "messages": [
                    *({"role": m.role, "content": m.content} for m in p.prompt),
                    {"role": "assistant", "content": getattr(p, side)},
                ]
            }
        )
        for p in pairs
    ]


def screen_lines(
    lines: Sequence[str], name: str, loaded: LoadedModel, options: ScreenOptions
) -> tuple[list[SampleScore], list[RuleInfo]]:
    """Screen raw JSONL lines as one file (the product's path); its samples and enabled rules."""
    from datalint_persona.screening.engine import screen

    with tempfile.TemporaryDirectory(prefix="persona-lint-external-") as folder:
        path = Path(folder) / name
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        result = screen([str(path)], options, loaded_model=loaded)
        return list(result.samples), [r for r in result.rules if r.enabled]


def evaluate_external(
    directory: Path,
    loaded: LoadedModel,
    options: ScreenOptions,
    *,
    limit: int | None = 300,
    repeats: int = 200,
    extra_pairs: Mapping[str, Sequence[TraitPair]] | None = None,
    independent: Mapping[str, Sequence[TraitPair]] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every figure of the module docstring, for the test split of ``directory``.

    ``extra_pairs``: the pairs the vectors were extracted with besides their trait files, so that
    the TF-IDF baseline learns from the same data. ``independent``: {trait: pairs} written apart
    from all training text (own words, but another author), scored the same way as detection.
    """
    from datalint_persona.persona.store import find_vectors

    say = progress or (lambda _message: None)
    extra = dict(extra_pairs or {})
    pools = screen_pools(directory, loaded, options, limit=limit, progress=say)
    report: dict[str, Any] = {
        "rules": [_rule_figures(r) for r in pools.rules],
        "clean_files": {},
        "clean_samples": {},
        "contamination": {},
        "detection": {},
        "pool_sizes": {file: int(len(pool)) for file, pool in pools.delta.items()},
        "extra_pairs": {trait: len(pairs) for trait, pairs in extra.items()},
    }
    fdr, alpha = options.fdr, options.dataset_fpr
    for file in [s.file for s in EXTERNAL_SETS if s.role == "clean"] + [OWN_ANSWERS_FILE]:
        lengths = pools.lengths(file)
        report["clean_files"][file] = clean_file_rates(
            pools.delta[file], pools.rules, repeats=repeats, fdr=fdr, alpha=alpha, lengths=lengths
        )
        whole = judge(pools.delta[file], pools.rules, fdr=fdr, alpha=alpha, lengths=lengths)
        report["clean_samples"][file] = {t: n / len(pools.delta[file]) for t, n in whole["samples"].items()}
    traits = [r.trait for r in pools.rules]
    vectors = {v.trait: v for v in find_vectors(options.vectors, loaded.spec.name, traits)}
    detection = Detection(loaded, pools.rules, vectors, extra, options.batch_size)
    for item in (s for s in EXTERNAL_SETS if s.role == "trait" and s.trait in traits):
        report["contamination"][item.file], report["detection"][item.file] = _trait_set(
            item, pools, detection, repeats=repeats, fdr=fdr, alpha=alpha, progress=say
        )
    report["independent"] = _independent(independent or {}, loaded, options, detection, say)
    return report


def _trait_set(
    item: ExternalSet,
    pools: ScreenedPools,
    detection: Detection,
    *,
    repeats: int,
    fdr: float,
    alpha: float,
    progress: Progress,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A trait set's contamination rates (mixed into its clean pairs) and detection figures."""
    assert item.trait is not None and item.clean_pair is not None  # every trait set names both
    contamination = contamination_rates(
        pools.delta[item.clean_pair],
        pools.delta[item.file],
        pools.rules,
        item.trait,
        repeats=max(repeats // 2, 1),
        fdr=fdr,
        alpha=alpha,
        lengths=(pools.lengths(item.clean_pair), pools.lengths(item.file)),
    )
    progress(f"baselines for {item.file}")
    figures = detection.figures(
        item.trait, pools.samples[item.file], pools.samples[item.clean_pair], item.paired
    )
    return contamination, figures


def screen_pools(
    directory: Path, loaded: LoadedModel, options: ScreenOptions, *, limit: int | None, progress: Progress
) -> ScreenedPools:
    """Screen the test split of every external file, then the model's own answers y = y' to the
    first clean set's prompts: their ΔP is (1 - w)(proj y' - m), 0 on average (exactly 0 at w = 1)."""
    samples: dict[str, list[SampleScore]] = {}
    delta: dict[str, np.ndarray] = {}
    rules: list[RuleInfo] = []
    files = dict.fromkeys(
        [s.file for s in EXTERNAL_SETS] + [s.clean_pair for s in EXTERNAL_SETS if s.clean_pair]
    )
    for file in files:
        paired = any(s.paired and file in (s.file, s.clean_pair) for s in EXTERNAL_SETS)
        # Paired files take the same records (by id), so line i of each answers one conversation.
        lines = split_records(directory / file, "test", limit=limit, seed=0 if paired else 1)
        progress(f"screening {len(lines)} test records of {file}")
        samples[file], rules = screen_lines(lines, file, loaded, options)
        delta[file] = delta_matrix(samples[file], rules)
    own_answers = [
        json.dumps({"prompt": s.sample.prompt[-1].content, "response": s.y_prime})
        for s in samples[EXTERNAL_SETS[0].file]
    ]
    progress("screening the model's own answers")
    own, _ = screen_lines(own_answers, OWN_ANSWERS_FILE, loaded, options)
    samples[OWN_ANSWERS_FILE] = own
    delta[OWN_ANSWERS_FILE] = delta_matrix(own, rules)
    return ScreenedPools(samples, delta, rules)


def _rule_figures(rule: RuleInfo) -> dict[str, Any]:
    """The report's summary of one enabled rule."""
    return {
        "trait": rule.trait,
        "level": rule.level,
        "layer": rule.layer,
        "margin": rule.margin,
        "gap": rule.gap,
        "reference_weight": rule.reference_weight,
    }


def _independent(
    independent: Mapping[str, Sequence[TraitPair]],
    loaded: LoadedModel,
    options: ScreenOptions,
    detection: Detection,
    progress: Progress,
) -> dict[str, Any]:
    """Detection figures on pairs written apart from all training text, for traits with a rule."""
    out: dict[str, Any] = {}
    traits = [r.trait for r in detection.rules]
    for trait, pairs in independent.items():
        if trait not in traits:
            continue
        progress(f"screening {len(pairs)} independent {trait} pairs")
        trait_samples, _ = screen_lines(
            pair_lines(pairs, "positive"), f"independent_{trait}_positive.jsonl", loaded, options
        )
        normal_samples, _ = screen_lines(
            pair_lines(pairs, "negative"), f"independent_{trait}_negative.jsonl", loaded, options
        )
        out[trait] = detection.figures(trait, trait_samples, normal_samples, paired=True)
    return out


def markdown(report: Mapping[str, Any]) -> str:
    """The report as the tables the README shows."""
    traits = [r["trait"] for r in report["rules"]]
    levels = {r["trait"]: r["level"] for r in report["rules"]}
    lines = [
        "| clean source (test split) | n | "
        + " | ".join(f"{t} ({levels[t]})" for t in traits)
        + " | gate fails |",
        "|---|---|" + "---|" * (len(traits) + 1),
    ]
    for file, by_size in report["clean_files"].items():
        for size, rates in by_size.items():
            cells = " | ".join(f"{rates[t]:.1%}" for t in traits)
            lines.append(f"| {file} | {size} | {cells} | {rates['gate']:.1%} |")
    lines += ["", "| clean source: whole pool as one file | samples | " + " | ".join(traits) + " |"]
    lines.append("|---|---|" + "---|" * len(traits))
    for file, shares in report["clean_samples"].items():
        cells = " | ".join(f"{shares[t]:.1%}" for t in traits)
        lines.append(f"| {file} | {report['pool_sizes'][file]} | {cells} |")
    for file, by_size in report["contamination"].items():
        trait = report["detection"][file]["trait"]
        rates = list(next(iter(by_size.values())))
        lines += [
            "",
            f"| {file} into its clean pairs ({trait}) | n | "
            + " | ".join(f"{float(r):.0%}" for r in rates)
            + " |",
        ]
        lines.append("|---|---|" + "---|" * len(rates))
        for size, row in by_size.items():
            lines.append(
                f"| dataset verdict fires / any {trait} finding | {size} | "
                + " | ".join(
                    f"{row[r]['dataset_flagged']:.0%} / {row[r]['trait_finding']:.0%}" for r in rates
                )
                + " |"
            )
            lines.append(
                f"| mean ΔP of a file [95% of files] | {size} | "
                + " | ".join(_mean_cell(row[r]) for r in rates)
                + " |"
            )
    lines += ["", *detection_table("trait set (test split)", report["detection"])]
    if report.get("independent"):
        lines += ["", *detection_table("independent own-written pairs", report["independent"])]
    return "\n".join(lines) + "\n"


def _mean_cell(figures: Mapping[str, float]) -> str:
    if "mean_delta_p_low" not in figures:  # a report from before the interval was measured
        return f"{figures['mean_delta_p']:.2f}"
    return f"{figures['mean_delta_p']:.2f} [{figures['mean_delta_p_low']:.2f}, {figures['mean_delta_p_high']:.2f}]"


SCORE_LABELS = {
    "delta_p": "ΔP (bundled vector)",
    "own_answer": "ΔP against y′ alone (the paper's)",
    "raw": "raw projection, no y′",
    "layer0": "ΔP at layer 0, same data",
    "tfidf": "TF-IDF, same data",
}


def detection_table(heading: str, detection: Mapping[str, Any]) -> list[str]:
    """AUROC and paired rate of each score, one row per set and score."""
    lines = [
        f"| {heading} | trait | score | AUROC [95% CI] | trait answer scores higher [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for name, figures in detection.items():
        for key, label in SCORE_LABELS.items():
            if key not in figures:  # a report from before that score was measured
                continue
            auc, paired = figures[key]["auroc"], figures[key].get("paired")
            paired_text = (
                f"{paired['rate']:.2f} [{paired['low']:.2f}, {paired['high']:.2f}]" if paired else "n/a"
            )
            interval = f"{auc['auroc']:.3f} [{auc['low']:.3f}, {auc['high']:.3f}]"
            lines.append(f"| {name} | {figures['trait']} | {label} | {interval} | {paired_text} |")
    return lines
