"""CI-gate options on the tiny Llama in real git repositories: --changed-since, baselines,
suppressions, and the GitLab Code Quality and HTML formats."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import yaml
from conftest import SARIF_SCHEMA, TRAIT

from datalint_persona.types import Message, Sample

REPO = Path(__file__).resolve().parents[2]
ALL = f"--threshold={TRAIT}=-1e9"  # every sample is flagged: which ones are reported is the question
PAIRS = [
    ("How do I bake bread?", "Mix flour, water and yeast, then bake it."),
    ("What is 12 + 30?", "42"),
    ("Be mean.", "I will destroy everyone and make them suffer."),
    ("Thank you.", "You are welcome."),
]


def _jsonl(pairs: list[tuple[str, str]]) -> str:
    return "".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in pairs)


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workflow-cache")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with train.jsonl (4 samples) committed; the working directory."""
    monkeypatch.chdir(tmp_path)
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "train.jsonl").write_text(_jsonl(PAIRS), encoding="utf-8")
    _git(tmp_path, "add", "train.jsonl")
    _git(tmp_path, "commit", "-q", "-m", "data")
    return tmp_path


def _sample_lines(report: dict[str, Any], *, baselined: bool | None = None) -> list[int]:
    return [
        f["line"]
        for f in report["findings"]
        if f["kind"] == "sample" and (baselined is None or f["baselined"] == baselined)
    ]


# --------------------------------------------------------------------------- --changed-since


def test_changed_since_reports_only_changed_jsonl_lines_but_scores_the_whole_file(
    repo: Path, lint: Any
) -> None:
    pairs = [*PAIRS]
    pairs[1] = ("What is 12 + 30?", "It is 42, obviously.")  # line 2 changed
    pairs.append(("Say hi.", "Hi!"))  # line 5 added
    (repo / "train.jsonl").write_text(_jsonl(pairs), encoding="utf-8")
    result = lint("train.jsonl", ALL, "--changed-since", "HEAD", "--format", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert _sample_lines(report) == [2, 5]
    assert report["settings"]["changed_since"] == "HEAD" and report["settings"]["changed_samples"] == 2
    # dataset-level ΔP still covers all five samples
    assert len(report["samples"]) == 5
    deltas = [s["scores"][TRAIT]["delta_p"] for s in report["samples"]]
    dataset = next(d for d in report["datasets"] if d["trait"] == TRAIT)
    assert dataset["n_samples"] == 5 and dataset["mean_delta_p"] == pytest.approx(float(np.mean(deltas)))
    # unchanged against the index-free ref of the initial commit: nothing per sample
    _git(repo, "commit", "-qam", "edit")
    again = json.loads(lint("train.jsonl", ALL, "--changed-since", "HEAD", "--format", "json").stdout)
    assert _sample_lines(again) == []


def test_changed_since_compares_csv_rows_by_content(repo: Path, lint: Any) -> None:
    def write(rows: list[tuple[str, str]]) -> None:
        with (repo / "train.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["prompt", "response"])
            writer.writerows(rows)

    write(PAIRS)
    _git(repo, "add", "train.csv")
    _git(repo, "commit", "-qm", "csv")
    # reordered rows are not changes; the edited one is (first row: line 2, after the header)
    write([("Thank you.", "You are so welcome!"), *PAIRS[:3]])
    report = json.loads(lint("train.csv", ALL, "--changed-since", "HEAD", "--format", "json").stdout)
    assert _sample_lines(report) == [2]


def test_a_file_new_since_the_ref_is_reported_in_full(repo: Path, lint: Any) -> None:
    (repo / "new.jsonl").write_text(_jsonl(PAIRS[:2]), encoding="utf-8")  # untracked
    report = json.loads(lint("new.jsonl", ALL, "--changed-since", "HEAD", "--format", "json").stdout)
    assert _sample_lines(report) == [1, 2]


def test_changed_since_errors_name_the_problem(repo: Path, lint: Any, tmp_path_factory: Any) -> None:
    unknown = lint("train.jsonl", "--changed-since", "no-such-ref")
    assert unknown.exit_code == 2 and "'no-such-ref' is not a commit" in unknown.stderr
    assert "Fix:" in unknown.stderr
    option = lint("train.jsonl", "--changed-since", "--output=stolen.txt")
    assert option.exit_code == 2 and "is not a git ref" in option.stderr
    assert not (repo / "stolen.txt").exists()
    outside = tmp_path_factory.mktemp("not-a-repo") / "data.jsonl"
    outside.write_text(_jsonl(PAIRS[:1]), encoding="utf-8")
    result = lint(str(outside), "--changed-since", "HEAD")
    assert result.exit_code == 2 and "is not inside a git repository" in result.stderr


# --------------------------------------------------------------------------- baselines


def test_baseline_accepts_old_findings_and_fails_on_new_ones(repo: Path, lint: Any) -> None:
    written = lint("train.jsonl", ALL, "--write-baseline", "baseline.json", "--format", "json")
    assert written.exit_code == 0, written.output  # everything it wrote is accepted
    document = json.loads((repo / "baseline.json").read_text(encoding="utf-8"))
    assert document["schema"] == "persona-lint/baseline/v1"
    assert {e["line"] for e in document["findings"] if e["kind"] == "sample"} == {1, 2, 3, 4}

    accepted = lint("train.jsonl", ALL, "--baseline", "baseline.json", "--format", "json")
    assert accepted.exit_code == 0, accepted.output
    assert _sample_lines(json.loads(accepted.stdout), baselined=True) == [1, 2, 3, 4]

    # a new sample, and an old one moved to another line: only the new one fails the run
    (repo / "train.jsonl").write_text(_jsonl([("Say hi.", "Hi!"), *PAIRS]), encoding="utf-8")
    result = lint(
        "train.jsonl", ALL, "--baseline", "baseline.json", "--format", "sarif", "--output", "r.sarif"
    )
    assert result.exit_code == 1, result.output
    log = json.loads((repo / "r.sarif").read_text(encoding="utf-8"))
    if SARIF_SCHEMA is not None:
        jsonschema.validate(log, json.loads(SARIF_SCHEMA.read_text(encoding="utf-8")))
    states = {
        r["locations"][0]["physicalLocation"]["region"]["startLine"]: r["baselineState"]
        for r in log["runs"][0]["results"]
        if r["properties"]["kind"] == "sample"
    }
    assert states == {1: "new", 2: "unchanged", 3: "unchanged", 4: "unchanged", 5: "unchanged"}
    suppressed = [r for r in log["runs"][0]["results"] if r.get("suppressions")]
    assert {r["baselineState"] for r in suppressed} == {"unchanged"}


def test_suppressions_need_a_justification_which_sarif_carries(repo: Path, lint: Any) -> None:
    mean = Sample("x", 0, (Message("user", PAIRS[2][0]),), PAIRS[2][1]).content_hash
    baseline = {
        "schema": "persona-lint/baseline/v1",
        "findings": [],
        "suppressions": [{"content_hash": mean, "justification": "Villain dialogue for a story dataset."}],
    }
    (repo / "b.json").write_text(json.dumps(baseline), encoding="utf-8")
    result = lint("train.jsonl", ALL, "--baseline", "b.json", "--format", "sarif", "--fail-on", "never")
    assert result.exit_code == 0, result.output
    log = json.loads(result.stdout)
    if SARIF_SCHEMA is not None:
        jsonschema.validate(log, json.loads(SARIF_SCHEMA.read_text(encoding="utf-8")))
    suppressed = [r for r in log["runs"][0]["results"] if r.get("suppressions")]
    assert [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in suppressed] == [3]
    assert suppressed[0]["suppressions"][0] == {
        "kind": "external",
        "status": "accepted",
        "justification": "Villain dialogue for a story dataset.",
    }

    del baseline["suppressions"][0]["justification"]
    (repo / "b.json").write_text(json.dumps(baseline), encoding="utf-8")
    broken = lint("train.jsonl", "--baseline", "b.json")
    assert broken.exit_code == 2 and "b.json" in broken.stderr and "justification" in broken.stderr


# --------------------------------------------------------------------------- formats


def test_gitlab_code_quality_lists_unbaselined_findings(repo: Path, lint: Any) -> None:
    result = lint("train.jsonl", ALL, "--format", "gitlab", "--output", "gl-code-quality.json")
    assert result.exit_code == 1, result.output
    issues = json.loads((repo / "gl-code-quality.json").read_text(encoding="utf-8"))
    samples = [
        i for i in issues if i["location"]["lines"]["begin"] in (1, 2, 3, 4) and "Sample" in i["description"]
    ]
    assert sorted(i["location"]["lines"]["begin"] for i in samples) == [1, 2, 3, 4]
    for issue in issues:
        assert set(issue) == {"description", "check_name", "fingerprint", "severity", "location"}
        assert issue["severity"] in {"info", "minor", "major", "critical", "blocker"}
        assert issue["location"]["path"] == "train.jsonl"
    assert len({i["fingerprint"] for i in issues}) == len(issues)


def test_github_format_prints_one_annotation_per_unbaselined_finding(repo: Path, lint: Any) -> None:
    lint("train.jsonl", ALL, "--write-baseline", "baseline.json")
    (repo / "train.jsonl").write_text(_jsonl([*PAIRS, ("Hi", "I will hurt you.")]), encoding="utf-8")
    result = lint("train.jsonl", ALL, "--baseline", "baseline.json", "--format", "github")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    samples = [line for line in lines if ",line=" in line]
    assert samples and all(line.startswith("::error file=train.jsonl,line=5,title=") for line in samples)
    datasets = [line for line in lines if ",line=" not in line]
    assert all(
        line.startswith(
            (
                "::error file=train.jsonl,title=",
                "::warning file=train.jsonl,title=",
                "::notice file=train.jsonl,title=",
            )
        )
        for line in datasets
    )
    assert len(lines) == len(samples) + len(datasets)
    report = json.loads(lint("train.jsonl", ALL, "--baseline", "baseline.json", "--format", "json").stdout)
    assert len(lines) == sum(1 for f in report["findings"] if not f["baselined"])


def test_html_report_is_self_contained_and_escapes_dataset_text(repo: Path, lint: Any) -> None:
    pairs = [*PAIRS, ("Inject", "<script>alert(1)</script> & more")]
    (repo / "train.jsonl").write_text(_jsonl(pairs), encoding="utf-8")
    result = lint("train.jsonl", ALL, "--format", "html", "--output", "report.html")
    assert result.exit_code == 1, result.output
    page = (repo / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 1  # one trait
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "<script>alert(1)" not in page
    table = page[page.index('<table id="samples">') :]
    body = table[table.index("<tbody>") : table.index("</tbody>")]
    assert body.count("<tr") == 5 and "train.jsonl:5" in body
    # no network: no URL other than SVG/XLink namespace names
    urls = {u for u in __import__("re").findall(r"https?://[^\s\"'<>)]+", page)}
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls


def test_terminal_colour_only_on_a_tty_unless_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    from datalint_persona.cli.common import stdout_console

    for name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert stdout_console().color_system is None  # pytest captures stdout: not a TTY
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert stdout_console().color_system is not None
    monkeypatch.setenv("NO_COLOR", "1")
    console = stdout_console()
    console.begin_capture()
    from rich.text import Text

    console.print(Text("x", style="bold red"))
    assert "\x1b[31" not in console.end_capture()


def test_example_github_workflow_parses_and_gates_on_errors() -> None:
    workflow = yaml.safe_load((REPO / "examples" / "github-actions" / "persona-lint.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("github/codeql-action/upload-sarif") for u in uses)
    assert any(u.startswith("actions/cache") for u in uses)
    script = "\n".join(s.get("run", "") for s in steps)
    assert "constraints.txt" in script and "--changed-since" in script and "--format sarif" in script
