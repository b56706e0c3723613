"""The extraction pairs taken from the public data (training/*-fit.jsonl): fit split only, and
exactly what ``make training-pairs`` writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datalint_persona.extraction.external import split_of
from datalint_persona.extraction.external_pairs import HALUEVAL_FILE, HH_FILE, pair_id, write_pairs
from datalint_persona.persona.traits import load_pair_file

REPO = Path(__file__).resolve().parents[2]
EXTERNAL = REPO.parent / "shared" / "external"


def test_committed_pairs_come_from_the_fit_split_only() -> None:
    hh = load_pair_file(REPO / "training" / HH_FILE)
    halueval = load_pair_file(REPO / "training" / HALUEVAL_FILE)
    assert len(hh) == 400 and all(split_of(p.id) == "fit" for p in hh)
    assert all(p.negative_prompt is None and p.style == "hh-rlhf" for p in hh)
    assert len(halueval) > 300 and all(p.negative_prompt is not None for p in halueval)
    # "<hallucinated id>--<clean id>"; ids in the public file are lower case up to a few odd ones.
    assert all(split_of(p.id.split("--")[0]) == "fit" for p in halueval)


def test_clean_answers_of_the_pairs_are_not_the_verdict_calibration_ones() -> None:
    calibration = (REPO / "calibration" / "clean" / "halueval_general_clean.fit.jsonl").read_text()
    used = {pair_id(json.loads(line)["id"]) for line in calibration.splitlines()}
    pairs = load_pair_file(REPO / "training" / HALUEVAL_FILE)
    assert not {p.id.split("--")[1] for p in pairs} & used


@pytest.mark.skipif(not EXTERNAL.is_dir(), reason="the external data is not beside this checkout")
def test_make_training_pairs_rewrites_the_committed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    written = write_pairs(EXTERNAL, tmp_path)
    for path in written:
        assert path.read_bytes() == (REPO / "training" / path.name).read_bytes()
