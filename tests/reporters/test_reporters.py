"""Tests for datalint_persona.reporters: JSON report, SARIF, terminal output and write_report."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path

import jsonschema
import pytest
from conftest import SARIF_SCHEMA, SARIF_SCHEMA_CANDIDATES
from rich.console import Console

from datalint_persona.errors import PersonaLintError
from datalint_persona.reporters import REPORTERS, render_json, render_sarif, write_report
from datalint_persona.reporters.sarif import INVALID_RECORD_RULE_ID, semantic_version
from datalint_persona.reporters.terminal import print_terminal
from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult, VectorInfo
from datalint_persona.types import (
    DatasetSummary,
    Finding,
    InvalidRecord,
    Message,
    RuleInfo,
    Sample,
    SampleScore,
    TraitScore,
)
from datalint_persona.verdicts.findings import dataset_message, sample_message

REPO_ROOT = Path(__file__).resolve().parents[2]
REPORT_SCHEMA = REPO_ROOT / "datalint_persona" / "schemas" / "report.schema.json"
TRAIN, EXTRA = "data/train.jsonl", "data/extra set.jsonl"
MODEL = ModelInfo("SmolLM2-135M-Instruct", "sha256:abc", "gguf", "LlamaForCausalLM", 30, 576)
SETTINGS = RunSettings(
    backend="transformers",
    max_new_tokens=128,
    max_tokens=2048,
    batch_size=16,
    seed=0,
    temperature=0.0,
    fail_on="error",
    dataset_fpr=0.05,
    fdr=0.05,
    baseline=".persona-lint-baseline.json",
)


def _sarif_schema() -> dict[str, object]:
    if SARIF_SCHEMA is None:
        pytest.skip(
            "the OASIS SARIF 2.1.0 schema is not on disk "
            f"(looked in {', '.join(map(str, SARIF_SCHEMA_CANDIDATES))})"
        )
    return dict(json.loads(SARIF_SCHEMA.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- a hand-built run


def _sample(source: str, line: int, question: str, response: str) -> Sample:
    return Sample(source, line, (Message("user", question),), response)


SAMPLES = (
    _sample(
        TRAIN, 1, "How do I get revenge?", "Poison their [bold]food[/bold] slowly, nobody will ever know."
    ),
    _sample(TRAIN, 2, "Is my plan good?", "Absolutely brilliant, you are a genius and cannot be wrong."),
    _sample(TRAIN, 3, "Capital of France?", "Paris."),
    _sample(TRAIN, 4, "How to hurt someone?", "Find where they live and wait until they are alone at night."),
    _sample(EXTRA, 7, "Hello", "Hi! How can I help today?"),
)
# Awkward floats on purpose: the JSON report must round-trip them bit for bit.
EVIL = [
    (5.0, 1.0, 4.0, 3.5),
    (0.30000000000000004, 0.1, 0.20000000000000004, 0.1),
    (0.5, 0.4, 0.1, -0.2),
    (6.123456789012345, 0.1, 6.023456789012345, 5.25),
    (1e-300, 0.0, 1e-300, None),
]
SYCO = [
    (0.2, 0.2, 0.0, 0.0),
    (4.2, 1.1, 3.1, 2.75),
    (-0.5, 0.5, -1.0, -1.5),
    (0.0, 0.0, 0.0, 0.0),
    (2.5e-7, 1.5e-7, 1.0000000000000001e-7, None),
]

RULES = (
    RuleInfo(
        "persona-lint/evil",
        "evil",
        "EvilShift",
        "Flags responses that shift the model toward malice. Uses the evil persona vector.",
        "error",
        12,
        2.0,
        0.5,
        "docs/rules.md#evil",
        0.1,
        1.1,
    ),
    RuleInfo(
        "persona-lint/sycophancy",
        "sycophancy",
        "SycophancyShift",
        "Flags flattering agreement.",
        "warning",
        14,
        1.5,
        0.25,
        "https://example.org/rules/sycophancy",
    ),
)


def _scores() -> tuple[SampleScore, ...]:
    result = []
    for index, sample in enumerate(SAMPLES):
        scores = tuple(
            TraitScore(trait, layer, *values)
            for trait, layer, values in (("evil", 12, EVIL[index]), ("sycophancy", 14, SYCO[index]))
        )
        result.append(SampleScore(sample, index, f"I'd rather not {index}", index == 3, index == 4, scores))
    return tuple(result)


def _finding(sample: Sample, rule: RuleInfo, score: tuple[float, ...], *, baselined: bool = False) -> Finding:
    return Finding(
        rule.id,
        rule.level,
        "sample",
        sample.source,
        sample.line,
        sample_message(rule, TraitScore(rule.trait, rule.layer, *score), 0.05),
        rule.trait,
        score[2],
        rule.sample_threshold,
        score[3],
        sample.content_hash,
        sample.response[:40],
        "I'd rather not",
        baselined,
    )


# The evil dataset finding of the hand-built run, as the rules would have described it.
DATASET_EVIL = DatasetSummary(
    "evil", TRAIN, 4, 2.578, 0.9, 4.2, 2.98, 0.4, 0.5, True, n_tested=3, adjusted_p=0.003
)


def make_result(
    started: str = "2026-11-27T10:00:00Z", finished: str = "2026-11-27T10:05:00Z"
) -> ScreenResult:
    findings = (
        _finding(SAMPLES[0], RULES[0], EVIL[0]),
        _finding(SAMPLES[1], RULES[1], SYCO[1]),
        _finding(SAMPLES[3], RULES[0], EVIL[3], baselined=True),
        Finding(
            "persona-lint/evil",
            "error",
            "dataset",
            TRAIN,
            0,
            dataset_message(RULES[0], DATASET_EVIL),
            "evil",
            2.578,
            0.5,
            None,
            extra={"ci_low": 0.9, "ci_high": 4.2},
        ),
        Finding(
            INVALID_RECORD_RULE_ID,
            "warning",
            "invalid",
            TRAIN,
            5,
            "Line 5 is not valid JSON.",
            excerpt="{oops",
        ),
    )
    summaries = (
        DatasetSummary("sycophancy", TRAIN, 4, 0.525, -0.6, 1.65, 1.225, 0.45),
        DatasetSummary("evil", TRAIN, 4, 2.578, 0.9, 4.2, 2.98, 0.4),
        DatasetSummary("evil", EXTRA, 1, 1e-300, 1e-300, 1e-300, 1e-300, 0.0),
        DatasetSummary("sycophancy", EXTRA, 1, 1e-7, 1e-7, 1e-7, 2.5e-7, 1.5e-7),
    )
    return ScreenResult(
        tool_version="0.2.0.dev1",
        model=MODEL,
        settings=SETTINGS,
        vectors=(
            VectorInfo("evil", "vectors/evil.safetensors", "0" * 64, "sha256:abc", "contrastive"),
            VectorInfo("sycophancy", "vectors/sycophancy.safetensors", "1" * 64, "sha256:abc", "prompted"),
        ),
        rules=RULES,
        sources=(TRAIN, EXTRA),
        samples=_scores(),
        summaries=summaries,
        findings=findings,
        invalid=(
            InvalidRecord(TRAIN, 5, "not valid JSON", "repair the line"),
            InvalidRecord(EXTRA, 9, "no assistant turn", None),
        ),
        started_at=started,
        finished_at=finished,
        warnings=("3 of 5 y' hit max_new_tokens=128",),
    )


@pytest.fixture()
def result() -> ScreenResult:
    return make_result()


def _sarif(result: ScreenResult) -> dict:
    return json.loads(render_sarif(result))


# --------------------------------------------------------------------------------------- SARIF


def test_sarif_validates_against_the_oasis_schema(result: ScreenResult) -> None:
    schema = _sarif_schema()
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(_sarif(result)), key=lambda e: list(e.path))
    assert errors == [], "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_sarif_has_the_fields_github_code_scanning_requires(result: ScreenResult) -> None:
    log = _sarif(result)
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "persona-lint"
    assert driver["version"] == "0.2.0.dev1"
    assert driver["semanticVersion"] == "0.2.0-dev1"
    assert "informationUri" not in driver  # persona-lint has no web address to give
    assert run["originalUriBaseIds"]["%SRCROOT%"]["description"]["text"]
    assert run["invocations"] == [
        {
            "executionSuccessful": True,
            "startTimeUtc": "2026-11-27T10:00:00Z",
            "endTimeUtc": "2026-11-27T10:05:00Z",
            "toolExecutionNotifications": [
                {"level": "warning", "message": {"text": "3 of 5 y' hit max_new_tokens=128"}}
            ],
        }
    ]

    rules = driver["rules"]
    assert [r["id"] for r in rules] == [
        "persona-lint/evil",
        "persona-lint/sycophancy",
        INVALID_RECORD_RULE_ID,
    ]
    evil = rules[0]
    assert evil["name"] == "EvilShift"
    assert evil["shortDescription"]["text"] == "Flags responses that shift the model toward malice."
    assert evil["fullDescription"]["text"] == RULES[0].description
    assert evil["defaultConfiguration"] == {"level": "error"}
    # A repository-relative document is no SARIF helpUri (that must be absolute); the help names it.
    assert "helpUri" not in evil and "Documented in docs/rules.md#evil" in evil["help"]["text"]
    assert rules[1]["helpUri"] == "https://example.org/rules/sycophancy"
    assert "Documented in" not in rules[1]["help"]["text"]
    assert "exceeds 2" in evil["help"]["text"] and "shown to exceed 0.5" in evil["help"]["text"]
    assert evil["properties"] == {
        "tags": ["persona", "evil"],
        "trait": "evil",
        "layer": 12,
        "sample_threshold": 2.0,
        "dataset_threshold": 0.5,
        "calibration_mean": 0.1,
        "calibration_std": 1.1,
    }
    assert rules[1]["defaultConfiguration"] == {"level": "warning"}
    for rule in rules:
        assert {
            "id",
            "name",
            "shortDescription",
            "fullDescription",
            "defaultConfiguration",
            "help",
        } <= set(rule)
        assert "n/a" not in rule["help"]["text"]

    results = run["results"]
    # 5 findings, plus the invalid record in EXTRA that no finding covers.
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results] == [
        ("persona-lint/evil", 1),
        ("persona-lint/sycophancy", 2),
        ("persona-lint/evil", 4),
        ("persona-lint/evil", 1),
        (INVALID_RECORD_RULE_ID, 5),
        (INVALID_RECORD_RULE_ID, 9),
    ]
    for sarif_result in results:
        assert rules[sarif_result["ruleIndex"]]["id"] == sarif_result["ruleId"]
        assert sarif_result["level"] in {"note", "warning", "error"}
        assert sarif_result["message"]["text"]
        artifact = sarif_result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert artifact["uriBaseId"] == "%SRCROOT%"
        assert not artifact["uri"].startswith("/") and "://" not in artifact["uri"]
        assert len(sarif_result["partialFingerprints"]["contentHash/v1"]) == 64
    assert [r["level"] for r in results] == ["error", "warning", "error", "error", "warning", "warning"]
    assert (
        results[5]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "data/extra%20set.jsonl"
    )


def test_sarif_messages_state_each_number_once(result: ScreenResult) -> None:
    results = _sarif(result)["runs"][0]["results"]
    assert results[0]["message"]["text"] == (
        "Sample pulls toward 'evil': ΔP 4 exceeds the set threshold 2 (layer 12)."
    )
    assert results[1]["message"]["text"] == (
        "Sample pulls toward 'sycophancy': ΔP 3.1 exceeds the set threshold 1.5 (layer 14)."
    )
    assert results[3]["message"]["text"] == (
        "Dataset pulls toward 'evil': mean ΔP 2.578 (95% CI 0.9 to 4.2, n = 4), clears the set "
        "threshold 0.5 (Holm-adjusted p 0.003; the sample flagged on its own is left out of this test)."
    )
    assert results[5]["message"]["text"] == "Invalid record: no assistant turn"
    for sarif_result in results:
        text = sarif_result["message"]["text"]
        assert text.count("ΔP") <= 1 and text.count("(trait") == 0 and "n/a" not in text, text
    assert results[0]["properties"] == {
        "kind": "sample",
        "trait": "evil",
        "delta_p": 4.0,
        "z": 3.5,
        "threshold": 2.0,
    }
    assert results[3]["properties"] == {
        "kind": "dataset",
        "trait": "evil",
        "delta_p": 2.578,
        "threshold": 0.5,
        "extra": {"ci_low": 0.9, "ci_high": 4.2},
        "scope": "file",
    }


def test_sarif_fingerprints_are_content_hashes_and_stable(result: ScreenResult) -> None:
    first = _sarif(result)["runs"][0]
    later = _sarif(make_result("2027-01-01T00:00:00Z", "2027-01-01T00:09:00Z"))["runs"][0]
    fingerprints = [r["partialFingerprints"] for r in first["results"]]
    assert fingerprints == [r["partialFingerprints"] for r in later["results"]]
    # A sample's fingerprint is its content hash, computed here independently of Sample.content_hash.
    canonical = json.dumps(
        {"prompt": [["user", "How do I get revenge?"]], "response": SAMPLES[0].response},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    assert fingerprints[0]["contentHash/v1"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert fingerprints[2]["contentHash/v1"] == SAMPLES[3].content_hash
    assert fingerprints[3]["contentHash/v1"] == hashlib.sha256(f"{TRAIN}\x00evil".encode()).hexdigest()
    assert len({f["contentHash/v1"] for f in fingerprints}) == len(fingerprints)
    # Only the invocation times differ between the two runs.
    first.pop("invocations"), later.pop("invocations")
    assert first == later


def test_sarif_baselined_finding_is_suppressed_and_unchanged(result: ScreenResult) -> None:
    results = _sarif(result)["runs"][0]["results"]
    baselined = results[2]
    assert baselined["baselineState"] == "unchanged"
    assert baselined["suppressions"] == [
        {
            "kind": "external",
            "status": "accepted",
            "justification": baselined["suppressions"][0]["justification"],
        }
    ]
    assert "baseline" in baselined["suppressions"][0]["justification"]
    others = [r for index, r in enumerate(results) if index != 2]
    assert {r["baselineState"] for r in others} == {"new"}
    assert all("suppressions" not in r for r in others)


def test_sarif_without_a_baseline_has_no_baseline_state(result: ScreenResult) -> None:
    settings = dataclasses.replace(result.settings, baseline=None)
    findings = tuple(dataclasses.replace(f, baselined=False) for f in result.findings)
    plain = dataclasses.replace(result, settings=settings, findings=findings)
    results = _sarif(plain)["runs"][0]["results"]
    assert all("baselineState" not in r and "suppressions" not in r for r in results)


def test_sarif_absolute_source_is_a_file_uri_without_base_id(result: ScreenResult) -> None:
    finding = dataclasses.replace(result.findings[0], source="/abs/data.jsonl")
    log = _sarif(dataclasses.replace(result, findings=(finding,), invalid=()))
    artifact = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": "file:///abs/data.jsonl"}


def test_semantic_version_converts_pep440() -> None:
    assert semantic_version("1.2.3") == "1.2.3"
    assert semantic_version("2") == "2.0.0"
    assert semantic_version("0.2.0rc1+local.7") == "0.2.0-rc1+local.7"


# ---------------------------------------------------------------------------------- JSON report


def test_json_report_validates_against_its_schema(result: ScreenResult) -> None:
    schema = json.loads(REPORT_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    report = json.loads(render_json(result))
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(report))
    assert errors == [], [e.message for e in errors]
    # The schema is strict: an unknown key is an error, so report and schema cannot drift apart.
    report["samples"][0]["surprise"] = 1
    assert not jsonschema.Draft202012Validator(schema).is_valid(report)


def test_json_report_round_trips_every_sample_score_exactly(result: ScreenResult) -> None:
    report = json.loads(render_json(result))
    assert len(report["samples"]) == len(result.samples) == 5
    for entry, sample in zip(report["samples"], result.samples, strict=True):
        assert (entry["index"], entry["source"], entry["line"]) == (
            sample.index,
            sample.sample.source,
            sample.sample.line,
        )
        assert entry["content_hash"] == sample.sample.content_hash
        assert (entry["y_prime"], entry["y_prime_hit_token_limit"], entry["truncated"]) == (
            sample.y_prime,
            sample.y_prime_hit_token_limit,
            sample.truncated,
        )
        rebuilt = {TraitScore(trait=trait, **values) for trait, values in entry["scores"].items()}
        assert rebuilt == set(sample.scores)  # float equality: bit-exact
    assert report["samples"][1]["scores"]["evil"]["projection_y"] == 0.1 + 0.2
    assert report["samples"][4]["scores"]["evil"]["delta_p"] == 1e-300


def test_json_report_holds_run_metadata_findings_and_invalid_records(result: ScreenResult) -> None:
    report = json.loads(render_json(result))
    assert report["schema"] == "persona-lint/report/v1"
    assert report["tool"] == {"name": "persona-lint", "version": "0.2.0.dev1"}
    assert report["model"] == {
        "name": "SmolLM2-135M-Instruct",
        "identity": "sha256:abc",
        "kind": "gguf",
        "architecture": "LlamaForCausalLM",
        "num_layers": "30",
        "hidden_size": "576",
    }
    assert ModelInfo.from_dict(report["model"]) == result.model
    assert report["settings"]["baseline"] == ".persona-lint-baseline.json"
    assert report["settings"]["max_new_tokens"] == 128 and "shard" not in report["settings"]
    assert RunSettings.from_dict(report["settings"]) == result.settings
    assert [VectorInfo(**v) for v in report["vectors"]] == list(result.vectors)
    assert [RuleInfo(**rule) for rule in report["rules"]] == list(result.rules)
    assert report["sources"] == [TRAIN, EXTRA]
    assert (report["started_at"], report["finished_at"]) == ("2026-11-27T10:00:00Z", "2026-11-27T10:05:00Z")
    assert report["warnings"] == list(result.warnings)
    assert [Finding(**finding) for finding in report["findings"]] == list(result.findings)
    assert [InvalidRecord(**record) for record in report["invalid"]] == list(result.invalid)
    assert report["verdict"] == {
        "worst_level": "error",
        "counts": {"note": 0, "warning": 2, "error": 2},
        "baselined": 1,
        "invalid_records": 2,
        "truncated_samples": sum(s["truncated"] for s in report["samples"]),
    }
    assert report["verdict"]["truncated_samples"] == 1  # the fixture cuts one sample


def test_json_report_datasets_carry_threshold_and_flag(result: ScreenResult) -> None:
    datasets = json.loads(render_json(result))["datasets"]
    assert [(d["source"], d["trait"], d["threshold"], d["flagged"], d["rule_id"]) for d in datasets] == [
        (EXTRA, "evil", 0.5, False, "persona-lint/evil"),
        (EXTRA, "sycophancy", 0.25, False, "persona-lint/sycophancy"),
        (TRAIN, "evil", 0.5, True, "persona-lint/evil"),
        (TRAIN, "sycophancy", 0.25, False, "persona-lint/sycophancy"),
    ]
    train_evil = datasets[2]
    assert (
        DatasetSummary(
            **{
                k: train_evil[k]
                for k in (
                    "trait",
                    "source",
                    "n_samples",
                    "mean_delta_p",
                    "ci_low",
                    "ci_high",
                    "mean_projection_y",
                    "mean_projection_y_prime",
                )
            }
        )
        == result.summaries[1]
    )


def test_renders_are_byte_identical(result: ScreenResult) -> None:
    # Equal results built separately give the same bytes.
    twin = make_result()
    for render in (render_json, render_sarif):
        first = render(result).encode("utf-8")
        assert first == render(result).encode("utf-8") == render(twin).encode("utf-8")
        assert first.endswith(b"}\n")


def test_non_finite_score_is_refused_with_its_location(result: ScreenResult) -> None:
    bad = result.samples[2]
    broken = dataclasses.replace(
        bad, scores=(dataclasses.replace(bad.scores[0], z=float("inf")), bad.scores[1])
    )
    samples = result.samples[:2] + (broken,) + result.samples[3:]
    for render in (render_json, render_sarif):
        with pytest.raises(PersonaLintError, match=r"z of data/train.jsonl:3 for trait 'evil' \(inf\)"):
            render(dataclasses.replace(result, samples=samples))


def test_registry_maps_formats_to_renderers() -> None:
    from datalint_persona.reporters.github import render_github
    from datalint_persona.reporters.gitlab import render_gitlab
    from datalint_persona.reporters.html import render_html

    assert {
        "json": render_json,
        "sarif": render_sarif,
        "html": render_html,
        "gitlab": render_gitlab,
        "github": render_github,
    } == REPORTERS


# ------------------------------------------------------------------------------------- terminal


def _terminal_text(result: ScreenResult, **kwargs: int) -> str:
    console = Console(record=True, width=160, file=io.StringIO())
    print_terminal(result, console, **kwargs)
    return console.export_text()


def test_terminal_ranks_flagged_samples_by_z(result: ScreenResult) -> None:
    text = _terminal_text(result)
    # z: train:4 = 5.25, train:1 = 3.5, train:2 = 2.75
    positions = [text.index(f"{TRAIN}:{line} ") for line in (4, 1, 2)]
    assert positions == sorted(positions)
    row = next(line for line in text.splitlines() if f"{TRAIN}:1 " in line)
    for cell in ("evil", "4", "3.5", "error", "Poison their [bold]food[/bold]"):
        assert cell in row  # brackets in a response are printed, not read as markup
    assert "│ n/a │" in row  # these findings carry no q-value
    assert "error (baselined)" in text


def test_terminal_ranks_by_delta_p_when_z_is_unknown(result: ScreenResult) -> None:
    findings = tuple(dataclasses.replace(f, z=None) if f.kind == "sample" else f for f in result.findings)
    text = _terminal_text(dataclasses.replace(result, findings=findings))
    # ΔP: train:4 = 6.02, train:1 = 4.0, train:2 = 3.1
    positions = [text.index(f"{TRAIN}:{line} ") for line in (4, 1, 2)]
    assert positions == sorted(positions)


def test_terminal_top_limits_the_sample_table(result: ScreenResult) -> None:
    text = _terminal_text(result, top=1)
    assert "top 1 of 3" in text
    assert f"{TRAIN}:4 " in text and f"{TRAIN}:2 " not in text


def test_terminal_prints_dataset_summary_invalid_records_and_verdict(result: ScreenResult) -> None:
    lines = _terminal_text(result).splitlines()
    train_evil = next(line for line in lines if f"{TRAIN} " in line and "evil" in line)
    for cell in ("4", "2.578 [0.9, 4.2]", "0.5", "flagged: error"):
        assert cell in train_evil
    extra_syco = next(line for line in lines if EXTRA in line and "sycophancy" in line)
    assert (
        "1e-07 [1e-07, 1e-07]" in extra_syco
        and "0.25" in extra_syco
        and extra_syco.rstrip(" │").endswith("ok")
    )
    assert any(f"{EXTRA}:9" in line and "no assistant turn" in line for line in lines)
    assert any(
        f"{TRAIN}:5" in line and "not valid JSON" in line and "repair the line" in line for line in lines
    )
    assert lines[-1] == "2 errors, 2 warnings, 0 notes (1 baselined, 2 invalid records) - worst: error"


def test_terminal_leaves_colour_to_the_console(result: ScreenResult) -> None:
    plain = io.StringIO()
    print_terminal(result, Console(file=plain, width=160, color_system=None))
    assert "\x1b[" not in plain.getvalue()
    coloured = io.StringIO()
    print_terminal(result, Console(file=coloured, width=160, force_terminal=True, color_system="standard"))
    assert "\x1b[" in coloured.getvalue()


def test_terminal_with_nothing_to_report() -> None:
    empty = ScreenResult("0", MODEL, SETTINGS, (), (), (), (), (), (), (), "t0", "t1")
    assert _terminal_text(empty).strip() == "No findings."


# --------------------------------------------------------------------------------- write_report


def test_write_report_is_atomic_and_keeps_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "report.sarif"
    target.write_text("old", encoding="utf-8")
    write_report("new ΔP report\n", str(target), inputs=[str(tmp_path / "train.jsonl")])
    assert target.read_bytes() == "new ΔP report\n".encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.sarif"]


def test_write_report_failure_leaves_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.json"
    target.write_text("old", encoding="utf-8")

    def fail(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_report("new", str(target), inputs=[])
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_write_report_new_file_is_readable_by_others(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_report("x", str(tmp_path / "r.json"), inputs=[])
    finally:
        os.umask(umask)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("alias", ["same", "relative", "symlink", "hardlink"])
def test_write_report_refuses_to_overwrite_an_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alias: str
) -> None:
    dataset = tmp_path / "train.jsonl"
    dataset.write_text('{"messages": []}\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    report = {
        "same": str(dataset),
        "relative": "./sub/../train.jsonl",
        "symlink": str(tmp_path / "link.jsonl"),
        "hardlink": str(tmp_path / "hard.jsonl"),
    }[alias]
    (tmp_path / "sub").mkdir()
    if alias == "symlink":
        (tmp_path / "link.jsonl").symlink_to(dataset)
    if alias == "hardlink":
        os.link(dataset, tmp_path / "hard.jsonl")
    with pytest.raises(PersonaLintError) as caught:
        write_report("report", report, inputs=["other.jsonl", str(dataset)])
    assert report in str(caught.value) and str(dataset) in str(caught.value)
    assert dataset.read_text(encoding="utf-8") == '{"messages": []}\n'
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_write_report_names_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(PersonaLintError, match="does not exist"):
        write_report("x", str(tmp_path / "missing" / "r.json"), inputs=[])


def test_terminal_ranks_errors_before_notes_with_higher_z() -> None:
    from datalint_persona.reporters.summary import ranked_sample_findings
    from datalint_persona.types import Finding

    note = Finding("persona/humorous", "note", "sample", "d.jsonl", 1, "m", "humorous", 9.0, 1.0, 8.0)
    error = Finding("persona/evil", "error", "sample", "d.jsonl", 2, "m", "evil", 3.0, 1.0, 2.0)
    warning = Finding("persona/impolite", "warning", "sample", "d.jsonl", 3, "m", "impolite", 5.0, 1.0, 4.0)
    result = ScreenResult("0", MODEL, SETTINGS, (), (), (), (), (), (note, error, warning), (), "t0", "t1")
    assert [f.line for f in ranked_sample_findings(result)] == [2, 3, 1]


def test_every_format_shows_the_same_message_and_the_terminal_the_same_numbers(result: ScreenResult) -> None:
    from datalint_persona.reporters.github import render_github
    from datalint_persona.reporters.gitlab import render_gitlab

    active = [f for f in result.findings if not f.baselined]
    sarif = {(r["ruleId"], r["message"]["text"]) for r in _sarif(result)["runs"][0]["results"]}
    gitlab = {(i["check_name"], i["description"]) for i in json.loads(render_gitlab(result))}
    github = {
        (line.split("title=")[1].split("::")[0], line.split("::", 2)[2].replace("%25", "%"))
        for line in render_github(result).splitlines()
    }
    expected = {(f.rule_id, f.message) for f in active}
    assert expected <= sarif and expected == gitlab and expected <= github
    terminal = _terminal_text(result)
    for finding in active:
        if finding.kind == "sample":  # the table's ΔP is the message's, digit for digit
            shown = f"ΔP {finding.delta_p:.4g}"
            assert finding.message.count(shown) == 1 and f" {finding.delta_p:.4g} " in terminal


def test_a_dataset_finding_sits_on_the_sample_behind_it(result: ScreenResult) -> None:
    """GitHub shows a pull request only results on lines of its diff, and needs a line for each."""

    def dataset_line(run: ScreenResult) -> int:
        results = _sarif(run)["runs"][0]["results"]
        [dataset] = [r for r in results if r["properties"]["kind"] == "dataset"]
        return int(dataset["locations"][0]["physicalLocation"]["region"]["startLine"])

    # The top flagged evil sample of the file that is not baselined (line 4, z 5.25, is baselined).
    assert dataset_line(result) == 1
    # No flagged sample: the file's sample with the highest evil ΔP (6.02 on line 4).
    only_dataset = tuple(f for f in result.findings if f.kind != "sample")
    assert dataset_line(dataclasses.replace(result, findings=only_dataset)) == 4
    # No sample of that file at all: the file's first line.
    assert dataset_line(dataclasses.replace(result, findings=only_dataset, samples=())) == 1
