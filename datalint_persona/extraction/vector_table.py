"""Write the Markdown table of bundled vectors:
``python -m datalint_persona.extraction.vector_table DIR [EXTERNAL.json]``.

Every figure comes from the vectors' sidecars, which ``persona-lint vectors build`` computed, and
from the report of ``persona-lint vectors evaluate-external --json`` when one is given.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from datalint_persona.persona.vectors import PersonaVector

HEADER = """# Bundled persona vectors: {model}

Built by `make vectors` (`persona-lint vectors build --method contrastive --direction {direction}`)
from response-token activations of the trait file's trait-exhibiting and normal answers (40 pairs per
trait, 7 answer styles){sources_text}. {direction_text}

The layer is the one with the largest held-out Cohen's d; calibration uses the 64 held-out pairs of `traits/TRAIT.yaml` and the model's own greedy y′. All figures below are ΔP
figures on those held-out pairs, with each vector's calibrated reference: w is the weight of the
model's own answer y′ in it (1: the paper's ΔP; see `docs/verdicts.md`). *Lexical* is the paper's
ΔP at layer 0 (an average of token embeddings, i.e. a bag of words). Layer selection and thresholds use the same held-out pairs, so the
figures are somewhat optimistic.

| trait | layer | C | w | d (layer) | d random 95% | AUROC | TPR @ 5% FPR | confusable AUROC | confusable TPR | lexical confusable AUROC | beats lexical on confusable? |
|---|---|---|---|---|---|---|---|---|---|---|---|
"""


def _probe_c(meta: dict[str, Any]) -> str:
    c = meta.get("probe_c")
    return "–" if c is None else f"{c:g}"


def row(vector: PersonaVector) -> str:
    meta, cal = vector.metadata, vector.calibration_record
    layer = cal["layer"]
    stats = next(s for s in meta["layer_stats"] if s["layer"] == layer)
    overall, conf, lex = cal["overall"], cal.get("confusable"), cal.get("lexical_confusable")
    beats = "n/a" if not (conf and lex) else ("yes" if conf["auroc"] > lex["auroc"] + 0.02 else "**no**")
    return (
        f"| {vector.trait} | {layer} | {_probe_c(meta)} | {cal.get('reference', {}).get('weight', 1.0):.2f} | {stats['cohens_d']:.2f} | {stats['random_d95']:.2f} "
        f"| {overall['auroc']:.3f} | {overall['tpr_at_threshold']:.2f} "
        f"| {conf['auroc'] if conf else float('nan'):.3f} | {conf['tpr_at_threshold'] if conf else float('nan'):.2f} "
        f"| {lex['auroc'] if lex else float('nan'):.3f} | {beats} |"
    )


def style_table(vectors: list[PersonaVector]) -> str:
    styles = sorted({s for v in vectors for s in v.calibration_record.get("by_style", {})})
    lines = [
        "\n## Held-out AUROC of ΔP by answer style\n",
        "| trait | " + " | ".join(styles) + " |",
        "|---|" + "---|" * len(styles),
    ]
    for v in vectors:
        by_style = v.calibration_record.get("by_style", {})
        cells = [f"{by_style[s]['auroc']:.2f}" if s in by_style else "–" for s in styles]
        lines.append(f"| {v.trait} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


DIRECTION_TEXT = {
    "probe": "The direction at each layer is that of a logistic-regression probe on standardized "
    "features, scaled to the mean difference's norm: the leave-one-style-out comparison below found it "
    "generalizes to unseen answer styles better than the paper's mean difference, for every trait. "
    "Its regularization C (column C) is chosen per trait among 0.001, 0.01, 0.1 and 1: the one whose "
    "probe, fit on all answer styles but one, best ranks the held-out style's answers (mean AUROC over "
    "styles, at a third, half and two thirds of the model's depth).",
    "mean-difference": "The direction at each layer is the paper's mean difference.",
}

LOSO_HEADER = """
## Leave-one-style-out: does the vector work on a style it was not built from?

`persona-lint vectors evaluate` builds each direction from the trait file's pairs (extraction and
calibration) of all answer styles but one, and tests it on the held-out style, at the bundled
vector's layer. It uses the trait file alone, without `training/`. *TF-IDF*
is a logistic regression on the answers' words, trained on the same pairs; *layer-0* is the same
mean difference over token embeddings. The target is a ΔP AUROC of at least 0.9 that beats both
lexical baselines on every held-out style; rows marked **no** miss the second part. The first
columns are those of the bundled vectors' direction (named in each heading).
"""


def loso_sections(path: Path) -> str:
    from datalint_persona.extraction.evaluation import markdown, variant_summary

    results = json.loads(path.read_text(encoding="utf-8"))
    text = LOSO_HEADER + "".join(markdown(trait, result) for trait, result in results.items())
    return text + (
        "\n### Which direction generalizes best\n\nMean over held-out styles of the ΔP AUROC "
        "(raw projection in parentheses):\n" + variant_summary(results)
    )


def sources_text(vectors: list[PersonaVector]) -> str:
    """Which vectors were also extracted from extra pair files (``--extra-pairs``)."""
    extra = []
    for v in vectors:
        files = [f"`training/{s['name']}` ({s['pairs']} pairs)" for s in v.metadata.get("sources", [])[1:]]
        if files:
            extra.append(f"{v.trait} also from {' and '.join(files)}")
    if not extra:
        return ""
    return "; " + ", ".join(extra) + ", with each source weighing the same"


EXTERNAL_HEADER = """
## On text nobody wrote for these vectors

`make evaluate-external` (`persona-lint vectors evaluate-external`) scores the test split of the
public sets in `calibration/README.md`, and the independent pairs of `evaluation/independent/`,
which another writer wrote apart from all training text. Next to each vector's ΔP are two
baselines built from exactly the pairs the vector was built from: ΔP at layer 0 along the vector's
own layer-0 direction (token embeddings, a bag of words), and TF-IDF + logistic regression. The
95% intervals are bootstrap intervals.
"""


def measured_weights(report: dict[str, Any]) -> str:
    """Which reference weights the report's ΔP used (reports before the fit used the paper's, 1)."""
    weights = ", ".join(f"{r['trait']} {r.get('reference_weight', 1.0):.2f}" for r in report["rules"])
    return f"\nThe ΔP rows were measured with these y′ weights w: {weights}.\n"


def external_sections(path: Path) -> str:
    from datalint_persona.extraction.external_report import detection_table

    report = json.loads(path.read_text(encoding="utf-8"))
    text = (
        EXTERNAL_HEADER
        + measured_weights(report)
        + "\n"
        + "\n".join(detection_table("external set (test split)", report["detection"]))
    )
    if report.get("independent"):
        text += "\n\n" + "\n".join(detection_table("independent pairs", report["independent"]))
    return text + "\n"


def main(folder: str, external: str | None = None) -> str:
    vectors = [PersonaVector.load(p) for p in sorted(Path(folder).glob("*.safetensors"))]
    model = vectors[0].model_name if vectors else Path(folder).name
    direction = vectors[0].direction if vectors else "probe"
    text = HEADER.format(
        model=model,
        direction=direction,
        direction_text=DIRECTION_TEXT[direction],
        sources_text=sources_text(vectors),
    )
    text += "\n".join(row(v) for v in vectors) + "\n"
    text += style_table(vectors)
    if external is not None:
        text += external_sections(Path(external))
    loso = Path(folder) / "loso.json"
    return text + (loso_sections(loso) if loso.is_file() else "")


if __name__ == "__main__":
    sys.stdout.write(main(*sys.argv[1:3]))
