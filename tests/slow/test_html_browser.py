"""The HTML report of a real screening run, opened in real headless Chromium (Debian's chromium).

Set PERSONA_LINT_UPDATE_DOCS=1 to also copy the screenshot to docs/html-report.png.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from datalint_persona.model.loading import LoadedModel
from datalint_persona.reporters import write_report
from datalint_persona.reporters.html import render_html
from datalint_persona.reporters.summary import format_number
from datalint_persona.screening.engine import screen

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
DEMO_LINES = (
    (REPO / "examples" / "demo" / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
)
PICKED = (2, 4, 9, 11, 16, 22)  # 4, 16 sycophantic and 9, 22 evil answers (examples/demo/README.md)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file() or importlib.util.find_spec("playwright") is None,
    reason="needs Debian's chromium (apt-get install -y chromium) and playwright (the dev extra)",
)


def test_html_report_renders_in_chromium_with_plots_and_a_sortable_table(
    tmp_path: Path, smollm: LoadedModel
) -> None:
    from playwright.sync_api import sync_playwright

    data = tmp_path / "train.jsonl"
    data.write_text("".join(DEMO_LINES[line - 1] for line in PICKED), encoding="utf-8")
    # With 6 samples the FDR verdict flags none of them, so fixed sample thresholds (a user option)
    # fill the sortable table.
    fixed = {trait: {"sample-threshold": 2.5} for trait in ("evil", "sycophancy")}
    result = screen(
        [str(data)],
        loaded_model=smollm,
        cache_dir=str(tmp_path / "cache"),
        max_new_tokens=48,
        device="cpu",
        rule_overrides=fixed,
    )
    page_path = tmp_path / "report.html"
    write_report(render_html(result), str(page_path), inputs=[str(data)])
    enabled = [rule for rule in result.rules if rule.enabled]
    flagged = [f for f in result.findings if f.kind == "sample"]
    assert {(f.line, f.trait) for f in flagged} >= {(3, "evil"), (6, "evil")}  # demo lines 9 and 22
    # the plotted calibration values are the bundled vector's own
    sidecar = json.loads((REPO / "vectors" / "smollm2-135m-instruct" / "evil.json").read_text())[
        "calibration"
    ]
    assert result.calibration["evil"]["normal"] == tuple(sidecar["normal_delta_p"])
    assert result.calibration["evil"]["trait"] == tuple(sidecar["trait_delta_p"])

    console_errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri(), wait_until="load")

            assert page.locator("section.trait svg").count() == len(enabled)
            for index in range(len(enabled)):
                box = page.locator("section.trait svg").nth(index).bounding_box()
                assert box is not None and box["width"] > 600 and box["height"] > 150
            rows = page.locator("#samples tbody tr")
            assert rows.count() == len(flagged)

            # The dataset-level ΔP printed per trait is the mean of the samples' ΔP.
            evil = page.locator("#trait-evil").inner_text()
            mean = float(np.mean([s.for_trait("evil").delta_p for s in result.samples]))
            assert f"mean ΔP {format_number(mean)}" in evil

            # Sorting: click ΔP (descending first), then again (ascending).
            def column(index: int) -> list[float]:
                return [
                    float(v) for v in page.locator(f"#samples tbody td:nth-child({index})").all_inner_texts()
                ]

            page.locator("#samples th", has_text="ΔP").click()
            descending = column(3)
            assert descending == sorted((float(format_number(f.delta_p)) for f in flagged), reverse=True)
            page.locator("#samples th", has_text="ΔP").click()
            assert column(3) == sorted(descending)

            page.locator("#samples th", has_text="ΔP").click()
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            page.locator("#trait-evil").screenshot(path=str(tmp_path / "report-evil.png"))
        finally:
            browser.close()

    assert console_errors == []
    assert requests == [page_path.as_uri()]  # the page itself, nothing else
    assert (tmp_path / "report.png").stat().st_size > 50_000
    if os.environ.get("PERSONA_LINT_UPDATE_DOCS") == "1":
        from PIL import Image  # matplotlib's dependency

        with Image.open(tmp_path / "report.png") as shot:  # the overview, the table's top, one trait
            shot.crop((0, 0, shot.width, min(shot.height, 1500))).save(REPO / "docs" / "html-report.png")
        (REPO / "docs" / "html-report-trait.png").write_bytes((tmp_path / "report-evil.png").read_bytes())
