"""Click's own usage errors read like the tool's other errors: one line, the problem, the fix, exit 2."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from datalint_persona import __version__
from datalint_persona.cli.main import main


@pytest.mark.parametrize(
    ("args", "problem", "fix"),
    [
        (
            ["d.jsonl", "--format", "xml"],
            "Invalid value for '--format': 'xml' is not one of 'terminal'",
            "pass one of those values",
        ),
        (
            ["d.jsonl", "--threshold", "oops"],
            "--threshold: 'oops' is not TRAIT=VALUE",
            "for example --threshold evil=2.5",
        ),
        (
            ["d.jsonl", "--threshold", "evil=high"],
            "'high' is not a valid value in 'evil=high'",
            "--threshold evil=2.5",
        ),
        (
            ["d.jsonl", "--level", "evil=eror"],
            "unknown level 'eror'. Did you mean 'error'?",
            "use one of: note, warning, error",
        ),
        (
            ["d.jsonl", "--formt", "json"],
            "No such option '--formt'",
            "'persona-lint screen --help' for its options",
        ),
        (
            ["d.jsonl", "--batch-size", "0"],
            "'--batch-size': 0 is not in the range",
            "pass a number in the range",
        ),
        (
            ["d.jsonl", "--seed", str(2**63)],
            "'--seed': 9223372036854775808 is not in the range",
            "pass a number in the range",
        ),
        (
            ["d.jsonl", "--dtype", "float16"],
            "'--dtype': 'float16' is not one of 'auto', 'float32', 'bfloat16'",
            "pass one of those values",
        ),
        (
            ["vectors", "show"],
            "Missing argument 'VECTOR'.",
            "add it (see 'persona-lint vectors show --help')",
        ),
        (["vectors", "nosuch"], "No such command 'nosuch'.", "see 'persona-lint vectors --help'"),
        (["report", "missing.json"], "'missing.json' does not exist", "'persona-lint report --help'"),
    ],
)
def test_usage_errors_are_one_line_with_the_fix(args: list[str], problem: str, fix: str) -> None:
    result = CliRunner().invoke(main, args, prog_name="persona-lint", catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("persona-lint: error: ") and "Usage:" not in line, line
    head, _, tail = line.partition(" Fix: ")
    assert problem in head, line
    assert fix in tail, line


def test_help_version_and_no_arguments_behave_as_before() -> None:
    runner = CliRunner()
    helped = runner.invoke(main, ["report", "--help"], prog_name="persona-lint")
    assert helped.exit_code == 0 and helped.stdout.startswith("Usage: persona-lint report")
    version = runner.invoke(main, ["--version"], prog_name="persona-lint")
    assert (version.exit_code, version.stdout) == (0, f"persona-lint, version {__version__}\n")
    bare = runner.invoke(main, [], prog_name="persona-lint")
    assert bare.exit_code == 2 and "Commands:" in bare.output  # the group's help, as click shows it
