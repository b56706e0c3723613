"""--shard i/N on the tiny Llama, then ``persona-lint merge``: the same report as one run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import assert_close, write_mixed_records

from datalint_persona.cli.main import main
from datalint_persona.errors import ConfigError, InputError, PersonaLintError
from datalint_persona.reporters import render_json
from datalint_persona.reporters.gitlab import render_gitlab
from datalint_persona.screening.engine import screen
from datalint_persona.screening.merge import merge_reports
from datalint_persona.screening.sharding import Shard, parse_shard
from datalint_persona.settings import ScreenOptions


@pytest.fixture(scope="module")
def shard_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path, vectors_dir: Path
) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("shards")
    files = [
        str(write_mixed_records(folder / "a.jsonl", 8, 0)),
        str(write_mixed_records(folder / "b.jsonl", 5, 2)),
    ]

    def options(name: str, shard: str | None) -> ScreenOptions:
        return ScreenOptions(
            model=str(tiny_llama_dir),
            vectors=str(vectors_dir),
            cache_dir=str(folder / name),  # separate caches, as on separate machines
            device="cpu",
            # float32: these tests compare numbers across batches to 1e-5 (bf16 rounding follows the batch)
            dtype="float32",
            batch_size=4,
            shard=shard,
        )

    whole = screen(files, options("whole", None))
    reports = []
    for i in (1, 2, 3):
        shard = screen(files, options(f"shard{i}", f"{i}/3"))
        path = folder / f"shard{i}.json"
        path.write_text(render_json(shard), encoding="utf-8")
        reports.append(str(path))
    return {"folder": folder, "whole": whole, "reports": reports, "files": files}


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its times; each effect is checked to be its ΔP over the rule's gap
    and then left out, since dividing by a small gap scales the float noise of ΔP."""
    gaps = {rule["trait"]: rule["gap"] for rule in report["rules"]}
    datasets = []
    for dataset in report["datasets"]:
        gap = gaps[dataset["trait"]]
        for effect, delta in (
            ("effect", "mean_delta_p"),
            ("effect_low", "ci_low"),
            ("effect_high", "ci_high"),
        ):
            assert dataset[effect] == pytest.approx(dataset[delta] / gap, rel=1e-12)
        datasets.append({k: v for k, v in dataset.items() if not k.startswith("effect")})
    kept = {k: v for k, v in report.items() if k not in ("started_at", "finished_at")}
    return {**kept, "datasets": datasets}


def test_shards_split_the_samples_by_index_modulo(shard_run: dict[str, Any]) -> None:
    indices = []
    for i, path in enumerate(shard_run["reports"], start=1):
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        assert (
            report["settings"]["shard"]["index"] == i and report["settings"]["shard"]["total_samples"] == 13
        )
        own = [s["index"] for s in report["samples"]]
        assert own == [g for g in range(13) if g % 3 == i - 1]
        indices += own
    assert sorted(indices) == list(range(13))


def test_merged_report_equals_the_unsharded_run(shard_run: dict[str, Any]) -> None:
    whole = json.loads(render_json(shard_run["whole"]))
    merged = json.loads(render_json(merge_reports(list(reversed(shard_run["reports"])))))
    assert "shard" not in merged["settings"]
    # The count warnings are recomputed over all 13 samples, not copied from the shards.
    assert any("of 13 y' reached --max-new-tokens" in w for w in merged["warnings"]), merged["warnings"]
    assert_close(_comparable(merged), _comparable(whole))
    # Recomputed over all 13 samples, not copied from a shard: a shard's n differs.
    assert [d["n_samples"] for d in merged["datasets"]] == [8, 5]
    shard_one = json.loads(Path(shard_run["reports"][0]).read_text(encoding="utf-8"))
    assert [d["n_samples"] for d in shard_one["datasets"]] == [3, 2]


def test_merge_command_writes_the_report(shard_run: dict[str, Any]) -> None:
    out = shard_run["folder"] / "merged.json"
    result = CliRunner().invoke(main, ["merge", *shard_run["reports"], "-o", str(out), "--fail-on", "never"])
    assert result.exit_code == 0, result.output
    merged = json.loads(out.read_text(encoding="utf-8"))
    assert_close(_comparable(merged), _comparable(json.loads(render_json(shard_run["whole"]))))
    sarif = CliRunner().invoke(
        main, ["merge", *shard_run["reports"], "--format", "sarif", "--fail-on", "never"]
    )
    assert sarif.exit_code == 0 and json.loads(sarif.stdout)["version"] == "2.1.0"
    # Every registered format renders a merged report as it renders the unsharded run's.
    gitlab = CliRunner().invoke(
        main, ["merge", *shard_run["reports"], "--format", "gitlab", "--fail-on", "never"]
    )
    assert gitlab.exit_code == 0, gitlab.output
    assert gitlab.stdout == render_gitlab(shard_run["whole"])
    html = CliRunner().invoke(
        main, ["merge", *shard_run["reports"], "--format", "html", "--fail-on", "never"]
    )
    assert html.exit_code == 0 and html.stdout.startswith("<!DOCTYPE html>"), html.output[:200]


def test_merge_refuses_an_incomplete_or_unsharded_set(shard_run: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(PersonaLintError, match="each shard 1..3 is needed exactly once"):
        merge_reports(shard_run["reports"][:2])
    whole = tmp_path / "whole.json"
    whole.write_text(render_json(shard_run["whole"]), encoding="utf-8")
    with pytest.raises(PersonaLintError, match="not from a sharded run"):
        merge_reports([str(whole)])
    result = CliRunner().invoke(main, ["merge", str(whole)])
    assert result.exit_code == 2 and "not from a sharded run" in result.output


def test_merge_refuses_shards_of_another_version_of_the_data(
    shard_run: dict[str, Any], tmp_path: Path
) -> None:
    # A shard screened after the file changed carries another sha256 for it.
    edited = json.loads(Path(shard_run["reports"][2]).read_text(encoding="utf-8"))
    edited["inputs"][0]["sha256"] = "0" * 64
    stale = tmp_path / "shard3.json"
    stale.write_text(json.dumps(edited), encoding="utf-8")
    with pytest.raises(PersonaLintError, match="its 'inputs' differs"):
        merge_reports([*shard_run["reports"][:2], str(stale)])


def test_merge_refuses_settings_it_does_not_know(shard_run: dict[str, Any], tmp_path: Path) -> None:
    # Every shard carries the same unknown setting, so only the typed read can catch it.
    folder = tmp_path / "edited"
    folder.mkdir()
    edited = []
    for path in shard_run["reports"]:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        document["settings"]["tempreature"] = 0.5
        edited.append(folder / Path(path).name)
        edited[-1].write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(InputError, match="unknown settings tempreature") as caught:
        merge_reports([str(p) for p in edited])
    assert str(edited[0]) in str(caught.value)


def test_shard_option_of_the_cli(shard_run: dict[str, Any], tiny_llama_dir: Path, vectors_dir: Path) -> None:
    common = [
        "--model",
        str(tiny_llama_dir),
        "--vectors",
        str(vectors_dir),
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--quiet",
    ]
    cache = ["--cache-dir", str(shard_run["folder"] / "shard2")]
    args = [*shard_run["files"], "--shard", "2/3", "--format", "json", "--fail-on", "never", *cache, *common]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected = json.loads(Path(shard_run["reports"][1]).read_text(encoding="utf-8"))
    assert report["settings"]["shard"] == expected["settings"]["shard"]
    assert report["samples"] == expected["samples"]  # same caches: the very same values
    bad = CliRunner().invoke(main, [*shard_run["files"], "--shard", "0/3", *common])
    assert bad.exit_code == 2 and "--shard 0/3" in bad.output


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "x", "1-3"])
def test_bad_shard_specs_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_shard(text)


def test_parse_shard() -> None:
    assert parse_shard(" 3 / 4 ") == Shard(3, 4) and str(Shard(3, 4)) == "3/4"
