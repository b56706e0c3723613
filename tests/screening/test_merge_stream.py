"""``persona-lint merge`` reads shard reports one sample at a time: the same result, flat memory.

The shards are synthetic runs (benchmarks/json_memory.py): calibrated rules, each shard's own
verdicts and findings, awkward floats. The whole run they split is decided in memory here, as an
independent check of what the merge reads back from the files.
"""

from __future__ import annotations

import json
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from datalint_persona.cli.main import main
from datalint_persona.errors import InputError, PersonaLintError
from datalint_persona.reporters import render_json
from datalint_persona.screening.merge import merge_reports
from datalint_persona.screening.spool import SampleSpool
from datalint_persona.verdicts.decide import decide

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import json_memory  # noqa: E402

TOTAL = 600


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return [str(p) for p in json_memory.write_shards(tmp_path_factory.mktemp("shards"), TOTAL, 3)]


def _load(path: str | Path) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text(encoding="utf-8")))


def test_the_merge_equals_the_whole_run_decided_in_memory(shards: list[str]) -> None:
    merged = merge_reports(list(reversed(shards)))
    assert isinstance(merged.samples, SampleSpool) and len(merged.samples) == TOTAL  # on disk
    report = json.loads(render_json(merged))
    whole = json.loads(render_json(json_memory.synthetic_result(TOTAL)))
    # Text equality: every float (ΔP, projections, recomputed p- and q-values) bit for bit.
    assert json.dumps(report["samples"]) == json.dumps(whole["samples"])
    assert json.dumps(report["datasets"]) == json.dumps(whole["datasets"])
    assert [s["index"] for s in report["samples"]] == list(range(TOTAL))
    key = ("rule_id", "source", "line", "delta_p", "z", "extra")
    found = [[f[k] for k in key] for f in report["findings"]]
    assert found == [[f[k] for k in key] for f in whole["findings"]] and len(found) > 20
    # A shard that flagged a sample gave its excerpt; one that did not, none (reports hold no text).
    shard_flagged = {(f["source"], f["line"], f["rule_id"]) for p in shards for f in _load(p)["findings"]}
    for finding in report["findings"]:
        if finding["kind"] == "sample":
            shown = (finding["source"], finding["line"], finding["rule_id"]) in shard_flagged
            assert (finding["excerpt"] is not None) == shown


def test_the_layout_of_the_shard_files_does_not_matter(shards: list[str], tmp_path: Path) -> None:
    compact = []
    for path in shards:  # one line, no indentation; the keys keep their order
        compact.append(tmp_path / Path(path).name)
        compact[-1].write_text(json.dumps(_load(path), ensure_ascii=True), encoding="utf-8")
    assert render_json(merge_reports([str(p) for p in compact])) == render_json(merge_reports(shards))


def _edited(shards: list[str], folder: Path, edit: Any) -> list[str]:
    paths = [*shards]
    document = _load(shards[1])
    paths[1] = str(folder / "shard-2.json")
    Path(paths[1]).write_text(edit(document), encoding="utf-8")
    return paths


def test_a_damaged_sample_entry_names_the_file(shards: list[str], tmp_path: Path) -> None:
    def drop_scores(document: dict[str, Any]) -> str:
        del document["samples"][3]["scores"]
        return json.dumps(document)

    paths = _edited(shards, tmp_path, drop_scores)
    with pytest.raises(InputError, match=r"sample entry 4 of its 'samples'.*KeyError: 'scores'") as caught:
        merge_reports(paths)
    assert paths[1] in str(caught.value)
    result = CliRunner().invoke(main, ["merge", *paths, "-o", str(tmp_path / "merged.json")])
    assert result.exit_code == 2 and paths[1] in result.output, result.output
    assert not (tmp_path / "merged.json").exists()


def test_a_cut_off_shard_names_the_file_and_exits_2(shards: list[str], tmp_path: Path) -> None:
    paths = _edited(shards, tmp_path, lambda document: render_json_text(document)[:50_000])
    result = CliRunner().invoke(main, ["merge", *paths])
    assert result.exit_code == 2, result.output
    assert paths[1] in result.output and "not JSON" in result.output


def render_json_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)


def test_samples_before_rules_are_refused_with_the_fix(shards: list[str], tmp_path: Path) -> None:
    def samples_first(document: dict[str, Any]) -> str:
        return json.dumps({"samples": document.pop("samples"), **document})

    paths = _edited(shards, tmp_path, samples_first)
    with pytest.raises(InputError, match="its 'samples' come before its 'rules'") as caught:
        merge_reports(paths)
    assert paths[1] in str(caught.value) and "sort_keys" in str(caught.value)


def test_an_index_given_twice_is_refused(shards: list[str], tmp_path: Path) -> None:
    def repeat_index(document: dict[str, Any]) -> str:
        document["samples"][1]["index"] = document["samples"][0]["index"]
        return json.dumps(document)

    with pytest.raises(PersonaLintError, match=r"not 0..n-1 exactly once"):
        merge_reports(_edited(shards, tmp_path, repeat_index))


def _peak(action: Any) -> int:
    tracemalloc.start()
    try:
        action()
        return int(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def _merge_peak_beyond_the_verdicts(folder: Path, total: int) -> int:
    """The merge's peak less that of deciding the same samples' verdicts from a spool.

    The verdicts (shared with ``screen``) hold a few numbers per sample and trait, and a bootstrap
    buffer of a fixed size; they hold them however the samples were read.
    """
    paths = [str(p) for p in json_memory.write_shards(folder, total, 4)]
    spool = SampleSpool()
    spool.extend(json_memory.synthetic_score(g) for g in range(total))
    verdicts = _peak(lambda: decide(spool, json_memory.synthetic_rules(), seed=0))
    merged = _peak(lambda: merge_reports(paths))
    return merged - verdicts


def test_peak_memory_of_a_merge_does_not_grow_with_its_samples(tmp_path: Path, shards: list[str]) -> None:
    merge_reports(shards)  # imports (scipy, ijson) would count in the first measure
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small = _merge_peak_beyond_the_verdicts(tmp_path / "small", 200)
    large = _merge_peak_beyond_the_verdicts(tmp_path / "large", 2000)
    # Read whole, the reports' sample entries took about 5 KiB each as parsed JSON; what is left
    # (about 350 bytes) is the findings of the flagged samples and 8-byte offsets.
    per_sample = (large - small) / 1800
    assert per_sample < 1024, (small, large, per_sample)
