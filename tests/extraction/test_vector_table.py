"""The bundled vectors' README table: extra pair sources and the external section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from datalint_persona.extraction.vector_table import external_sections, sources_text
from datalint_persona.persona.vectors import PersonaVector


def figures(auroc: float, rate: float | None = None) -> dict:
    out: dict = {"auroc": {"auroc": auroc, "low": auroc - 0.1, "high": auroc + 0.1}}
    if rate is not None:
        out["paired"] = {"rate": rate, "low": rate - 0.1, "high": rate + 0.1}
    return out


def test_sources_name_the_extra_pair_files() -> None:
    vectors = np.ones((2, 4), dtype=np.float32)
    plain = PersonaVector("a", vectors, {"sources": [{"name": "trait file", "pairs": 40}]})
    extra = PersonaVector(
        "b", vectors, {"sources": [{"name": "trait file", "pairs": 40}, {"name": "b.jsonl", "pairs": 7}]}
    )
    assert sources_text([plain]) == ""
    assert sources_text([plain, extra]) == (
        "; b also from `training/b.jsonl` (7 pairs), with each source weighing the same"
    )
    two = PersonaVector(
        "c",
        vectors,
        {
            "sources": [
                {"name": "trait file", "pairs": 40},
                {"name": "c.x.jsonl", "pairs": 3},
                {"name": "c.jsonl", "pairs": 5},
            ]
        },
    )
    assert sources_text([two, extra]) == (
        "; c also from `training/c.x.jsonl` (3 pairs) and `training/c.jsonl` (5 pairs), "
        "b also from `training/b.jsonl` (7 pairs), with each source weighing the same"
    )


def test_external_section_has_a_row_per_set_and_score(tmp_path: Path) -> None:
    scores = {
        "delta_p": figures(0.61, 0.7),
        "own_answer": figures(0.58, 0.7),
        "raw": figures(0.64, 0.6),
        "layer0": figures(0.52, 0.5),
        "tfidf": figures(0.55, 0.6),
    }
    report = {
        "detection": {"hh.jsonl": {"trait": "evil", **scores}},
        "independent": {"evil": {"trait": "evil", **scores}},
        "rules": [{"trait": "evil", "reference_weight": 0.36}, {"trait": "humorous"}],
    }
    path = tmp_path / "external.json"
    path.write_text(json.dumps(report), encoding="utf-8")
    text = external_sections(path)
    # A rule measured before the reference fit had the paper's weight, 1.
    assert "measured with these y′ weights w: evil 0.36, humorous 1.00." in text
    assert "| hh.jsonl | evil | ΔP (bundled vector) | 0.610 [0.510, 0.710] | 0.70 [0.60, 0.80] |" in text
    assert "| evil | evil | TF-IDF, same data | 0.550 [0.450, 0.650] | 0.60 [0.50, 0.70] |" in text
    assert text.count("ΔP at layer 0, same data") == 2
    assert "| evil | evil | ΔP against y′ alone (the paper's) | 0.580 [0.480, 0.680] |" in text
    assert "| hh.jsonl | evil | raw projection, no y′ | 0.640 [0.540, 0.740] |" in text
    # A report without a score leaves its row out.
    del report["independent"]["evil"]["raw"]
    path.write_text(json.dumps(report), encoding="utf-8")
    assert external_sections(path).count("raw projection, no y′") == 1
