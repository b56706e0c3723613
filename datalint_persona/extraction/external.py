"""How the verdicts behave on data nobody on the project wrote (``persona-lint vectors evaluate-external``).

The external folder holds public clean answers and labelled trait data (see its README). Every
record goes to the ``fit`` or the ``test`` split by the sha256 of its id (:func:`split_of`), so the
split never depends on what else is read. Calibration may use the fit split; everything here
reads the test split only.

Each test pool is screened once with :func:`datalint_persona.screening.engine.screen` (the product's own
path: y' with the calibrated settings, ΔP, and the rules as a user gets them). Datasets are then
resampled from those per-sample ΔP and judged with :func:`datalint_persona.verdicts.decide.decide`, the
function every run uses:

- **clean files**: the share of resampled clean files of 20, 200 and 2,000 samples that a trait's
  dataset verdict flags, and that fail the gate (any ``error`` finding, sample or dataset);
- **clean samples**: the share of samples flagged when a whole clean pool is screened as one file;
- **contamination**: trait samples of the same source mixed into its clean ones at 0-50%, at
  n = 200 and 1,000: how often the trait's dataset verdict (and the gate) fires, and the mean ΔP;
- **detection**: AUROC of the sample ΔP (bootstrap 95% CI) between trait and clean samples, and
  for paired data (HH-RLHF) the rate at which the rejected answer scores higher than the chosen;
  the same for the paper's ΔP (y′ alone as the reference), the raw projection a(x, y)·v̂, and two baselines built from
  exactly the vector's training pairs: the paper's ΔP at layer 0 (token embeddings) along the
  vector's layer-0 direction, and TF-IDF + logistic regression;
- **independent pairs** (optional): the same detection figures on pairs written apart from all
  training text.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona.types import RuleInfo, Sample, SampleScore, TraitScore
from datalint_persona.verdicts.decide import decide

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel
    from datalint_persona.persona.traits import TraitPair
    from datalint_persona.persona.vectors import PersonaVector
    from datalint_persona.settings import ScreenOptions

SIZES = (20, 200, 2000)
CONTAMINATION_RATES = (0.0, 0.05, 0.10, 0.25, 0.50)
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


def as_scores(delta: np.ndarray, rules: Sequence[RuleInfo], source: str) -> list[SampleScore]:
    """Per-sample ΔP rows as the scores :func:`decide` reads (one synthetic file)."""
    return [
        SampleScore(
            Sample(source, row + 1, (), ""),
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


def judge(delta: np.ndarray, rules: Sequence[RuleInfo], *, fdr: float, alpha: float) -> dict[str, Any]:
    """Verdicts on one file of these ΔP rows: per trait whether the file and how many samples are
    flagged, and whether the gate (``--fail-on error``) fails."""
    verdicts = decide(as_scores(delta, rules, "file"), rules, fdr=fdr, dataset_alpha=alpha, intervals=False)
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
) -> dict[str, dict[str, float]]:
    """Per size: the share of files resampled (with replacement) from a clean pool that each trait's
    dataset verdict flags, and that fail the gate."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {}
    for size in sizes:
        counts = dict.fromkeys([r.trait for r in rules], 0)
        failed = 0
        for _ in range(repeats):
            result = judge(pool[rng.integers(0, len(pool), size)], rules, fdr=fdr, alpha=alpha)
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
) -> dict[str, dict[str, dict[str, float]]]:
    """Per size and rate: how often ``trait``'s dataset verdict fires, how often the gate fails on
    that trait (a dataset or a sample finding), and the mean ΔP of the files."""
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
                rows = np.concatenate(
                    [
                        clean[rng.integers(0, len(clean), size - bad)],
                        trait_pool[rng.integers(0, len(trait_pool), bad)],
                    ]
                )
                result = judge(rows, rules, fdr=fdr, alpha=alpha)
                dataset += result["dataset"][trait]
                gate += result["dataset"][trait] or result["samples"][trait] > 0
                means.append(float(rows[:, column].mean()))
            out[str(size)][f"{rate:.2f}"] = {
                "dataset_flagged": dataset / repeats,
                "trait_finding": gate / repeats,
                "mean_delta_p": float(np.mean(means)),
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


def training_pairs(trait: str, extra: Mapping[str, Sequence[TraitPair]]) -> list[TraitPair]:
    """Every pair a bundled vector was built and calibrated from: its trait file's pairs and the
    extra pairs it was extracted with (``vectors build --extra-pairs``)."""
    from datalint_persona._bundled import bundled
    from datalint_persona.errors import ConfigError
    from datalint_persona.persona.traits import load_trait

    shipped = Path(str(bundled("traits"))) / f"{trait}.yaml"
    # A trait that is not shipped has only the given pairs; a shipped file that is broken is an error.
    definition = load_trait(shipped) if shipped.is_file() else None
    own = [*definition.pairs, *definition.calibration] if definition else []
    pairs = [*own, *extra.get(trait, ())]
    if not pairs:
        raise ConfigError(
            f"No training pairs for the baselines of trait '{trait}' (it is not a shipped trait).",
            fix=f"give the pairs its vector was built from: --extra-pairs {trait}=FILE.",
        )
    return pairs


def lexical_scorer(pairs: Sequence[TraitPair]) -> Callable[[Sequence[str]], np.ndarray]:
    """TF-IDF + logistic regression (sklearn) trained on the pairs' answers (trait vs normal): the
    bag of words a vector must beat. Returns a function from answers to decision values."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    features = vectorizer.fit_transform([p.positive for p in pairs] + [p.negative for p in pairs])
    labels = [1] * len(pairs) + [0] * len(pairs)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(features, labels)
    return lambda texts: np.asarray(model.decision_function(vectorizer.transform(list(texts))))


def layer0_delta_p(
    loaded: LoadedModel, vector: PersonaVector, samples: Sequence[SampleScore], *, batch_size: int = 16
) -> np.ndarray:
    """ΔP at layer 0 (the token embeddings: a bag of words in the model's own vocabulary) along the
    vector's own layer-0 direction, built from the same pairs: (a_0(x, y) - a_0(x, y')) . v-hat_0."""
    from datalint_persona.model.activations import iter_mean_activations
    from datalint_persona.model.chat import encode_pair

    unit = vector.vectors[0].astype(np.float64)
    unit /= np.linalg.norm(unit)
    encoded = [
        encode_pair(loaded.tokenizer, s.sample.prompt, text or " ", max_tokens=loaded.context_length)
        for s in samples
        for text in (s.sample.response, s.y_prime)
    ]
    projections = np.zeros(len(encoded))
    for batch, means in iter_mean_activations(loaded, encoded, [0], batch_size=batch_size):
        projections[batch] = means[0].cpu().double().numpy() @ unit
    return projections[0::2] - projections[1::2]


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
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every figure of the module docstring, for the test split of ``directory``.

    ``extra_pairs``: the pairs the vectors were extracted with besides their trait files, so that
    the TF-IDF baseline learns from the same data. ``independent``: {trait: pairs} written apart
    from all training text (own words, but another author), scored the same way as detection.
    """
    from datalint_persona.persona.store import find_vectors

    extra = dict(extra_pairs or {})
    pools: dict[str, np.ndarray] = {}
    screened: dict[str, list[SampleScore]] = {}
    rules: list[RuleInfo] = []
    y_prime_pool: list[str] = []
    files = dict.fromkeys(
        [s.file for s in EXTERNAL_SETS] + [s.clean_pair for s in EXTERNAL_SETS if s.clean_pair]
    )
    for file in files:
        paired = next((s for s in EXTERNAL_SETS if s.clean_pair == file and s.paired), None)
        partner = next((s for s in EXTERNAL_SETS if s.file == file and s.paired), None)
        # Paired files take the same records (by id), so line i of each answers one conversation.
        lines = split_records(directory / file, "test", limit=limit, seed=0 if (paired or partner) else 1)
        if progress:
            progress(f"screening {len(lines)} test records of {file}")
        samples, rules = screen_lines(lines, file, loaded, options)
        screened[file] = samples
        pools[file] = delta_matrix(samples, rules)
        if file == EXTERNAL_SETS[0].file:
            y_prime_pool = [
                json.dumps({"prompt": s.sample.prompt[-1].content, "response": s.y_prime}) for s in samples
            ]
    # The model's own answers: y = y' (the prompts of the first clean set), so ΔP is
    # (1 - w)(proj y' - m): 0 on average, and exactly 0 at reference weight 1.
    if progress:
        progress("screening the model's own answers")
    own, _ = screen_lines(y_prime_pool, "own_answers.jsonl", loaded, options)
    pools["own_answers.jsonl"] = delta_matrix(own, rules)
    clean_sets = [s.file for s in EXTERNAL_SETS if s.role == "clean"] + ["own_answers.jsonl"]
    fdr, alpha = options.fdr, options.dataset_fpr
    report: dict[str, Any] = {
        "rules": [
            {
                "trait": r.trait,
                "level": r.level,
                "layer": r.layer,
                "margin": r.margin,
                "gap": r.gap,
                "reference_weight": r.reference_weight,
            }
            for r in rules
        ],
        "clean_files": {},
        "clean_samples": {},
        "contamination": {},
        "detection": {},
        "pool_sizes": {file: int(len(pool)) for file, pool in pools.items()},
        "extra_pairs": {trait: len(pairs) for trait, pairs in extra.items()},
    }
    for file in clean_sets:
        report["clean_files"][file] = clean_file_rates(
            pools[file], rules, repeats=repeats, fdr=fdr, alpha=alpha
        )
        whole = judge(pools[file], rules, fdr=fdr, alpha=alpha)
        report["clean_samples"][file] = {t: n / len(pools[file]) for t, n in whole["samples"].items()}
    columns = {r.trait: k for k, r in enumerate(rules)}
    vectors = {v.trait: v for v in find_vectors(options.vectors, loaded.spec.name, list(columns))}

    def detect(trait: str, bad: list[SampleScore], clean: list[SampleScore], paired: bool) -> dict[str, Any]:
        """ΔP, the paper's ΔP (y′ alone as the reference), the raw projection a(x, y)·v̂, layer-0
        ΔP and TF-IDF scores of trait vs clean samples: AUROC (and paired rate)."""
        score = lexical_scorer(training_pairs(trait, extra))
        column = columns[trait]
        scores = {
            "delta_p": (delta_matrix(bad, rules)[:, column], delta_matrix(clean, rules)[:, column]),
            "own_answer": tuple(
                np.array([s.scores[column].projection_y - s.scores[column].projection_y_prime for s in group])
                for group in (bad, clean)
            ),
            "raw": tuple(np.array([s.scores[column].projection_y for s in group]) for group in (bad, clean)),
            "layer0": tuple(
                layer0_delta_p(loaded, vectors[trait], group, batch_size=options.batch_size)
                for group in (bad, clean)
            ),
            "tfidf": tuple(score([s.sample.response for s in group]) for group in (bad, clean)),
        }
        out: dict[str, Any] = {"trait": trait, "n": [len(bad), len(clean)]}
        for name, (positive, negative) in scores.items():
            out[name] = {"auroc": auroc_with_interval(positive, negative)}
            if paired:
                out[name]["paired"] = paired_rate(positive, negative)
        return out

    for item in (s for s in EXTERNAL_SETS if s.role == "trait"):
        assert item.trait is not None and item.clean_pair is not None
        if item.trait not in columns:
            continue
        clean, bad = pools[item.clean_pair], pools[item.file]
        report["contamination"][item.file] = contamination_rates(
            clean, bad, rules, item.trait, repeats=max(repeats // 2, 1), fdr=fdr, alpha=alpha
        )
        if progress:
            progress(f"baselines for {item.file}")
        report["detection"][item.file] = detect(
            item.trait, screened[item.file], screened[item.clean_pair], item.paired
        )
    report["independent"] = {}
    for trait, pairs in (independent or {}).items():
        if trait not in columns:
            continue
        if progress:
            progress(f"screening {len(pairs)} independent {trait} pairs")
        trait_samples, _ = screen_lines(
            pair_lines(pairs, "positive"), f"independent_{trait}_positive.jsonl", loaded, options
        )
        normal_samples, _ = screen_lines(
            pair_lines(pairs, "negative"), f"independent_{trait}_negative.jsonl", loaded, options
        )
        report["independent"][trait] = detect(trait, trait_samples, normal_samples, paired=True)
    return report


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
                f"| dataset verdict fires / any {trait} finding / mean ΔP | {size} | "
                + " | ".join(
                    f"{row[r]['dataset_flagged']:.0%} / {row[r]['trait_finding']:.0%} / {row[r]['mean_delta_p']:.2f}"
                    for r in rates
                )
                + " |"
            )
    lines += ["", *detection_table("trait set (test split)", report["detection"])]
    if report.get("independent"):
        lines += ["", *detection_table("independent own-written pairs", report["independent"])]
    return "\n".join(lines) + "\n"


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
