"""The HTML and GitLab reporters on the hand-built result of test_reporters (no model)."""

from __future__ import annotations

import dataclasses
import json
import re

from datalint_persona.reporters.gitlab import SEVERITY, render_gitlab
from datalint_persona.reporters.html import render_html
from datalint_persona.reporters.summary import ranked_sample_findings
from datalint_persona.verdicts.baseline import finding_fingerprint
from reporters.test_reporters import make_result


def test_html_without_calibration_values_still_renders_every_enabled_trait() -> None:
    result = make_result()
    assert result.calibration == {}
    page = render_html(result)
    enabled = [rule for rule in result.rules if rule.enabled]
    assert page.count("<svg") == len(enabled)
    assert page.count("this vector stores no calibration values") == len(enabled)
    table = page[page.index('<table id="samples">') :]
    rows = table[table.index("<tbody>") : table.index("</tbody>")].count("<tr")
    assert rows == len(ranked_sample_findings(result))
    assert page == render_html(result)  # deterministic: no dates or random ids in the SVG


def test_html_plots_calibration_values_when_present() -> None:
    result = dataclasses.replace(
        make_result(), calibration={"evil": {"normal": (0.0, 0.5, -0.5), "trait": (4.0, 5.0, 6.0)}}
    )
    page = render_html(result)
    evil = page[page.index('id="trait-evil"') :]
    assert "3 normal and 3 trait-exhibiting answers" in evil[: evil.index("<svg")]
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls


def test_gitlab_issues_match_the_unbaselined_findings() -> None:
    base = make_result()
    first = base.findings[0]
    result = dataclasses.replace(
        base, findings=(dataclasses.replace(first, baselined=True), *base.findings[1:])
    )
    issues = json.loads(render_gitlab(result))
    active = [f for f in result.findings if not f.baselined]
    assert len(issues) == len(active)
    for issue, finding in zip(issues, active, strict=True):
        assert issue["check_name"] == finding.rule_id
        assert issue["severity"] == SEVERITY[finding.level]
        assert issue["location"] == {"path": finding.source, "lines": {"begin": max(finding.line, 1)}}
        assert finding.message.rstrip(".") in issue["description"]
    assert len({i["fingerprint"] for i in issues}) == len(issues)
    # the fingerprint follows the content, not the line
    moved = dataclasses.replace(
        result, findings=tuple(dataclasses.replace(f, line=f.line + 7) for f in active)
    )
    assert [i["fingerprint"] for i in json.loads(render_gitlab(moved))] == [i["fingerprint"] for i in issues]
    assert all(finding_fingerprint(f) for f in active)
