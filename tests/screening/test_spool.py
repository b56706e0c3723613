"""The on-disk spool of per-sample results: exact round trips, indexing, iteration, cleanup."""

from __future__ import annotations

import gc
import math
from pathlib import Path

import pytest

from datalint_persona.screening.spool import SampleSpool
from datalint_persona.types import InlineIgnore, Message, ReportedSample, Sample, SampleScore, TraitScore


def _score(i: int) -> SampleScore:
    prompt = (Message("system", "Be terse."), Message("user", f"Question {i} — naïve café 🙂\nline two"))
    traits = (
        TraitScore("evil", 16, 0.1 + i / 3, -2.5e-17, 1 / 7 + i, None),
        TraitScore("sycophancy", 20, math.pi * i, 1e300, -0.0, 3.25),
    )
    return SampleScore(
        Sample("data/train.jsonl", i + 1, prompt, f'  answer {i}\t"quoted"  '),
        i,
        f"y' {i}",
        i % 2 == 0,
        i % 3 == 0,
        traits,
    )


def test_records_come_back_exactly_by_index_slice_and_iteration() -> None:
    scores = [_score(i) for i in range(25)]
    spool = SampleSpool()
    spool.extend(scores[:10])
    spool.extend(scores[10:])  # appending after reads must not overwrite anything
    assert len(spool) == 25
    assert spool[0] == scores[0] and spool[24] == scores[24] and spool[-1] == scores[-1]
    assert spool[3:7] == scores[3:7]
    assert list(spool) == scores  # floats round-trip bit for bit, None stays None
    assert spool == scores and spool != scores[:-1]
    # Indexing while iterating: the iterator has its own file handle.
    for i, score in enumerate(spool):
        assert spool[len(spool) - 1 - i] == scores[len(scores) - 1 - i]
        assert score == scores[i]
    with pytest.raises(IndexError):
        spool[25]


def test_the_file_is_removed_when_the_spool_is_closed_or_collected() -> None:
    spool = SampleSpool()
    spool.extend([_score(0)])
    path = Path(spool._path)  # noqa: SLF001
    assert path.is_file()
    spool.close()
    assert not path.exists() and len(spool) == 0
    other = SampleSpool()
    other_path = Path(other._path)  # noqa: SLF001
    del other
    gc.collect()
    assert not other_path.exists()


def test_a_sample_read_from_a_report_keeps_its_hash_and_length() -> None:
    # A merge spools samples known only from a report: no text, the reported hash and length.
    reported = ReportedSample(
        "a.jsonl", 3, (), "", InlineIgnore(("evil",), "ok"), reported_hash="ab" * 32, reported_length=17
    )
    scores = [SampleScore(reported, 0, "y'", False, True, ()), _score(1)]
    spool = SampleSpool()
    spool.extend(scores)
    back = list(spool)
    assert back == scores and type(back[0].sample) is ReportedSample and type(back[1].sample) is Sample
    assert back[0].sample.content_hash == "ab" * 32 and back[0].sample.response_length == 17
