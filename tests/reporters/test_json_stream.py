"""The streamed JSON report: byte for byte the one-piece rendering, in memory that does not grow."""

from __future__ import annotations

import dataclasses
import io
import sys
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import overload

import pytest

from datalint_persona.cli.report_outputs import ReportOutput, emit_reports
from datalint_persona.errors import PersonaLintError
from datalint_persona.reporters import open_report, render_json, stream_report, write_json
from datalint_persona.reporters.encoding import dump_json
from datalint_persona.reporters.json_report import report_document
from datalint_persona.run_records import ScreenResult, ShardInfo
from datalint_persona.screening.spool import SampleSpool
from datalint_persona.types import InlineIgnore, Message, Sample, SampleScore, TraitScore
from reporters.test_reporters import make_result

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import json_memory  # noqa: E402


def _one_piece(result: ScreenResult) -> str:
    """The whole document built in memory and serialised at once (how render_json worked before)."""
    return dump_json(report_document(result), result, "JSON report")


def _unicode_samples() -> tuple[SampleScore, ...]:
    texts = [
        "Café crème, naïve façade 🙂👍🏽",
        'quotes " and \\ backslashes, a tab\t and a newline\nin the text',
        "control \x00\x01\x1b[31m and separators \u2028\u2029 and BOM \ufeff",
        "עברית and العربية right to left, 中文, 日本語",
    ]
    scores = []
    for i, text in enumerate(texts):
        ignore = (InlineIgnore(("evil",), "reviewed 🙂"), InlineIgnore(None, "all fine"), None, None)[i]
        sample = Sample(f"data/ünï cøde {i % 2}.jsonl", i + 1, (Message("user", text),), text[::-1], ignore)
        traits = (
            TraitScore("evil", 12, 1 / 3 + i, -2.5e-17, 5e-324, None, 0.30000000000000004, 1.0),
            TraitScore("sycophancy", 14, 1e300, -0.0, -1e-300, 2.2250738585072014e-308),
        )
        scores.append(SampleScore(sample, i, f"y' {text}", i % 2 == 0, i == 3, traits))
    return tuple(scores)


def _spooled(samples: Sequence[SampleScore]) -> SampleSpool:
    spool = SampleSpool()
    spool.extend(samples)
    return spool


def _variants() -> dict[str, ScreenResult]:
    base = make_result()  # findings (one baselined), dataset verdicts, invalid records, a baseline
    sharded = dataclasses.replace(
        base.settings, shard=ShardInfo(2, 3, 13), changed_since="origin/main", changed_samples=4
    )
    return {
        "hand-built run": base,
        "unicode and suppressions": dataclasses.replace(base, samples=_unicode_samples()),
        "shard and changed-since settings": dataclasses.replace(base, settings=sharded),
        "no samples": dataclasses.replace(base, samples=(), findings=(), summaries=(), invalid=()),
        "samples in a spool": dataclasses.replace(base, samples=_spooled(base.samples)),
        "a synthetic run of 300": json_memory.synthetic_result(300),
    }


@pytest.mark.parametrize("name", list(_variants()))
def test_streamed_text_is_the_one_piece_text(name: str, tmp_path: Path) -> None:
    result = _variants()[name]
    expected = _one_piece(result)
    assert render_json(result) == expected
    streamed = io.StringIO()
    write_json(result, streamed)
    assert streamed.getvalue() == expected
    # A file written through the atomic writer holds the same bytes (UTF-8, "\n" kept as it is).
    path = tmp_path / "report.json"
    with open_report(str(path), inputs=[]) as handle:
        stream_report(result, "json", handle)
    assert path.read_bytes() == expected.encode("utf-8")
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


class _IterateOnly(Sequence[SampleScore]):
    """Samples made one at a time as they are iterated; converting them to a list raises."""

    def __init__(self, count: int, make: Callable[[int], SampleScore]) -> None:
        self.count, self.make, self.passes = count, make, 0

    def __iter__(self) -> Iterator[SampleScore]:
        self.passes += 1
        return (self.make(g) for g in range(self.count))

    def __len__(self) -> int:  # list(), tuple() and sorted() ask for this first
        raise AssertionError("the samples were materialised")

    @overload
    def __getitem__(self, index: int) -> SampleScore: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[SampleScore]: ...

    def __getitem__(self, index: int | slice) -> SampleScore | Sequence[SampleScore]:
        raise AssertionError("the samples were indexed")


class _ByteCounter:
    """A sink that keeps only how much text it was given."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, text: str) -> int:
        self.size += len(text)
        return len(text)


def _synthetic_run(count: int) -> ScreenResult:
    head = json_memory.synthetic_result(50)
    return dataclasses.replace(head, samples=_IterateOnly(count, json_memory.synthetic_score))


def test_the_writer_reads_the_samples_twice_and_never_holds_them() -> None:
    samples = _IterateOnly(3, json_memory.synthetic_score)
    with pytest.raises(AssertionError, match="materialised"):
        list(samples)  # the guard works
    samples.passes = 0
    result = dataclasses.replace(json_memory.synthetic_result(50), samples=samples)
    sink = _ByteCounter()
    write_json(result, sink)
    assert samples.passes == 2  # the finiteness check, then the writing
    spooled = dataclasses.replace(result, samples=[json_memory.synthetic_score(g) for g in range(3)])
    assert sink.size == len(render_json(spooled))


def _peak_bytes(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_of_the_writer_does_not_grow_with_the_samples() -> None:
    small, large = _synthetic_run(200), _synthetic_run(2000)
    streamed = [_peak_bytes(lambda r=r: write_json(r, _ByteCounter())) for r in (small, large)]
    assert streamed[1] < 1.2 * streamed[0], streamed
    # The measure does see growth: the one-piece text of 10x the samples takes about 10x the memory.
    listed = [
        dataclasses.replace(small, samples=[json_memory.synthetic_score(g) for g in range(n)])
        for n in (200, 2000)
    ]
    whole = [_peak_bytes(lambda r=r: _one_piece(r)) for r in listed]
    assert whole[1] > 5 * whole[0], whole
    assert streamed[1] < whole[1] / 10


def test_a_refused_report_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    result = make_result()
    bad = result.samples[4]
    broken = dataclasses.replace(bad, scores=(dataclasses.replace(bad.scores[0], delta_p=float("nan")),))
    path = tmp_path / "report.json"
    path.write_text("the old report\n", encoding="utf-8")
    refused = dataclasses.replace(result, samples=(*result.samples[:4], broken))
    with (
        pytest.raises(PersonaLintError, match=r"delta_p of data/extra set.jsonl:7 for trait 'evil' \(nan\)"),
        open_report(str(path), inputs=[]) as handle,
    ):
        write_json(refused, handle)
    assert path.read_text(encoding="utf-8") == "the old report\n"
    assert list(tmp_path.iterdir()) == [path]


def test_several_files_are_put_in_place_only_when_all_are_written(tmp_path: Path) -> None:
    result = make_result()
    reports = [
        ReportOutput("json", str(tmp_path / "r.json")),
        ReportOutput("sarif", str(tmp_path / "no" / "r.sarif")),
    ]
    with pytest.raises(PersonaLintError, match="does not exist"):
        emit_reports(result, reports, inputs=[], top=5, summary=False, announce=False)
    assert list(tmp_path.iterdir()) == []  # the JSON report, written first, was not put in place
    (tmp_path / "no").mkdir()
    emit_reports(result, reports, inputs=[], top=5, summary=False, announce=False)
    assert (tmp_path / "r.json").read_text(encoding="utf-8") == render_json(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no", "r.json"]
