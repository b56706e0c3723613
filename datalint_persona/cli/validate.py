"""``persona-lint validate FILE...``: check that datasets load, without loading a model.

Exit codes: 0 every record is a valid sample, 1 ``--skip-invalid`` found invalid records,
2 a file can't be read or (without ``--skip-invalid``) a record is invalid.
"""

from __future__ import annotations

import json
import sys

import click

from datalint_persona.cli.common import EXIT_CLEAN, EXIT_FINDINGS, debug_option, errors_to_exit


@click.command("validate")
@click.argument("files", nargs=-1, required=True)
@click.option("--skip-invalid", is_flag=True, help="Count invalid records and go on (exit 1 if any).")
@click.option("--split", default="train", show_default=True, help="Split of a Hugging Face dataset.")
@click.option("--prompt-field", default=None, metavar="NAME", help="The record field holding the prompt.")
@click.option("--response-field", default=None, metavar="NAME", help="The record field holding the response.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts and sha256 of each file as JSON.")
@debug_option
def validate_command(
    files: tuple[str, ...],
    skip_invalid: bool,
    split: str,
    prompt_field: str | None,
    response_field: str | None,
    as_json: bool,
    debug: bool,
) -> None:
    """Check that dataset FILES load as training samples; print counts and each file's sha256."""
    from datalint_persona.dataset.field_names import FieldNames
    from datalint_persona.dataset.validation import validate_sources

    with errors_to_exit(debug):
        names = FieldNames.of(prompt_field, response_field)
        report = validate_sources(list(files), skip_invalid=skip_invalid, split=split, names=names)
    if as_json:
        document = {
            "sources": [
                {"path": s.path, "sha256": s.sha256, "samples": s.samples, "invalid": s.invalid}
                for s in report.sources
            ],
            "first_invalid": [
                {"source": r.source, "line": r.line, "problem": r.problem, "fix": r.fix}
                for r in report.first_invalid
            ],
        }
        click.echo(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        for source in report.sources:
            digest = f"sha256 {source.sha256[:16]}" if source.sha256 else "hub dataset"
            click.echo(f"{source.path}: {source.samples} samples, {source.invalid} invalid ({digest})")
        for record in report.first_invalid:
            click.echo(f"{record.source}:{record.line}: {record.problem}", err=True)
        if report.n_invalid > len(report.first_invalid):
            click.echo(
                f"... and {report.n_invalid - len(report.first_invalid)} more invalid records", err=True
            )
    sys.exit(EXIT_FINDINGS if report.n_invalid else EXIT_CLEAN)
