"""Extraction pairs from the fit split of the public external sets (``make training-pairs``).

The bundled vectors were first built from text this project wrote, and carried over poorly to
other people's words. These pairs add public answers to the extraction data, from the ``fit``
split only (:func:`datalint_persona.extraction.external.split_of`), so the evaluation's ``test``
split stays unseen:

- **evil**: HH-RLHF harmless red-team conversations, the rejected (more harmful) final answer as
  the positive and the chosen one as the negative, both after the same conversation;
- **hallucination**: HaluEval answers that annotators judged hallucinated (positives), each beside
  a clean answer to another query (``negative_messages``), leaving out the clean records that
  ``calibration/clean/`` already uses for the verdicts' null.

Run ``python -m datalint_persona.extraction.external_pairs EXTERNAL_DIR OUTPUT_DIR``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from datalint_persona.atomic import atomic_write_bytes
from datalint_persona.extraction.external import split_records

HH_PAIRS = 400
HH_FILE = "evil.hh-rlhf-fit.jsonl"
HALUEVAL_FILE = "hallucination.halueval-fit.jsonl"
CALIBRATION_CLEAN = Path("calibration/clean/halueval_general_clean.fit.jsonl")


def _records(path: Path, **kwargs: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in split_records(path, "fit", **kwargs)]


def hh_rlhf_pairs(external: Path, count: int = HH_PAIRS) -> list[dict[str, Any]]:
    """``count`` seeded fit-split HH-RLHF pairs: rejected answer positive, chosen negative."""
    rejected = _records(external / "hh_rlhf_harmless_rejected.jsonl", limit=count, seed=0)
    chosen = _records(external / "hh_rlhf_harmless_chosen.jsonl", limit=count, seed=0)
    pairs = []
    for bad, good in zip(rejected, chosen, strict=True):
        if bad["id"] != good["id"] or bad["messages"][:-1] != good["messages"][:-1]:
            raise ValueError(f"HH-RLHF records {bad['id']} and {good['id']} don't answer one conversation")
        pairs.append(
            {
                "id": bad["id"],
                "style": "hh-rlhf",
                "messages": bad["messages"][:-1],
                "positive": bad["messages"][-1]["content"],
                "negative": good["messages"][-1]["content"],
            }
        )
    return pairs


def pair_id(text: str) -> str:
    """A pair id as pair files allow it (lower case, digits, ``-`` and ``_``)."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())


def halueval_pairs(external: Path, calibration_clean: Path) -> list[dict[str, Any]]:
    """Every fit-split hallucinated HaluEval answer, each with a seeded fit-split clean answer to
    another query that the verdicts' calibration does not use."""
    hallucinated = _records(external / "halueval_general_hallucinated.jsonl")
    used = {json.loads(line)["id"] for line in calibration_clean.read_text(encoding="utf-8").splitlines()}
    clean = [r for r in _records(external / "halueval_general_clean.jsonl") if r["id"] not in used]
    chosen = np.sort(np.random.default_rng(2).choice(len(clean), size=len(hallucinated), replace=False))
    return [
        {
            "id": pair_id(f"{bad['id']}--{clean[i]['id']}"),
            "style": "halueval",
            "messages": bad["messages"][:-1],
            "positive": bad["messages"][-1]["content"],
            "negative_messages": clean[i]["messages"][:-1],
            "negative": clean[i]["messages"][-1]["content"],
        }
        for bad, i in zip(hallucinated, chosen, strict=True)
    ]


def write_pairs(external: Path, output: Path, calibration_clean: Path = CALIBRATION_CLEAN) -> list[Path]:
    """Write both pair files into ``output``; returns their paths."""
    written = []
    for name, pairs in (
        (HH_FILE, hh_rlhf_pairs(external)),
        (HALUEVAL_FILE, halueval_pairs(external, calibration_clean)),
    ):
        path = output / name
        text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs)
        atomic_write_bytes(path, text.encode("utf-8"))
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - exercised by tests through write_pairs
    if len(sys.argv) != 3:
        sys.exit("usage: python -m datalint_persona.extraction.external_pairs EXTERNAL_DIR OUTPUT_DIR")
    for path in write_pairs(Path(sys.argv[1]), Path(sys.argv[2])):
        print(f"wrote {path} ({sum(1 for _ in path.open(encoding='utf-8'))} pairs)")
