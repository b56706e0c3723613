"""NO_COLOR (no-color.org): no ANSI escape at all, bold and dim included; checked against FORCE_COLOR
alone, which does style the same report."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from reporters.test_reporters import make_result

from datalint_persona.cli.common import stderr_console, stdout_console
from datalint_persona.cli.main import main
from datalint_persona.reporters import render_json


def _terminal_report(tmp_path: Path, env: dict[str, str]) -> str:
    report = tmp_path / "report.json"
    report.write_text(render_json(make_result()), encoding="utf-8")
    result = CliRunner(env=env).invoke(main, ["report", str(report), "--fail-on", "never"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_no_color_leaves_no_escape_in_the_terminal_report(tmp_path: Path) -> None:
    styled = _terminal_report(tmp_path, {"FORCE_COLOR": "1", "NO_COLOR": ""})
    assert "\x1b[1m" in styled and "\x1b[2m" in styled  # bold and dim (the baselined finding)
    plain = _terminal_report(tmp_path, {"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b" not in plain
    assert "data/train.jsonl:1" in plain and "error (baselined)" in plain


@pytest.mark.parametrize("make_console", [stdout_console, stderr_console])
def test_every_cli_console_drops_styles_under_no_color(
    make_console: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert make_console().color_system is not None  # type: ignore[operator]
    monkeypatch.setenv("NO_COLOR", "1")
    console = make_console()  # type: ignore[operator]
    assert console.color_system is None
    with console.capture() as captured:
        console.print("[bold]x[/bold] [dim]y[/dim]")
    assert captured.get() == "x y\n"
