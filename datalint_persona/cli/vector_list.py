"""``persona-lint vectors list``: the vectors a run would use, with their rules and verdict policies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from datalint_persona.cli.common import debug_option, errors_to_exit, stdout_console
from datalint_persona.config_file import discover_config, read_config_file
from datalint_persona.settings import DEFAULT_MODEL, screen_options

if TYPE_CHECKING:
    from datalint_persona.verdicts.vector_listing import VectorListing


@click.command("list")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Whose shipped vectors to list.")
@click.option(
    "--vectors", "vectors_path", default=None, help="Folder or file of persona vectors (default: shipped)."
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Config file whose rules apply [default: nearest .persona-lint.yaml or pyproject.toml upwards].",
)
@click.option("--format", "output_format", type=click.Choice(["terminal", "json"]), default="terminal")
@debug_option
@click.pass_context
def list_command(
    ctx: click.Context,
    /,
    model: str,
    vectors_path: str | None,
    config_path: str | None,
    output_format: str,
    debug: bool,
) -> None:
    """List each vector's trait, rule, level and layer (after the config), file, calibration,
    held-out AUROC, and how its sample and dataset verdicts are decided."""
    with errors_to_exit(debug):
        from datalint_persona.model.loading import ALIASES, resolve_model
        from datalint_persona.persona.store import find_vectors
        from datalint_persona.verdicts.vector_listing import list_vectors

        given: dict[str, Any] = {}
        if ctx.get_parameter_source("model") != click.core.ParameterSource.DEFAULT:
            given["model"] = model
        if vectors_path is not None:
            given["vectors"] = vectors_path
        config = read_config_file(Path(config_path)) if config_path else discover_config()
        settings = screen_options(given, config)
        # The default model's alias needs no installed model to name its shipped vectors.
        model_name = DEFAULT_MODEL if settings.model in ALIASES else resolve_model(settings.model).name
        rows = list_vectors(find_vectors(settings.vectors, model_name), settings)
        if output_format == "json":
            click.echo(json.dumps([row.to_json() for row in rows], indent=2, ensure_ascii=False))
        else:
            _print_table(rows)


def _print_table(rows: Sequence[VectorListing]) -> None:
    """The listing as a table; file names appear as a column only where one is not TRAIT.safetensors."""
    from rich import box
    from rich.table import Table

    folders = sorted({str(Path(row.path).parent) for row in rows})
    named_by_trait = all(Path(row.path).stem == row.trait for row in rows)
    caption = f"vectors: {', '.join(folders)}" + ("/TRAIT.safetensors" if named_by_trait else "")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, caption=caption)
    headers = [
        "trait",
        "rule",
        "level",
        "layer",
        *([] if named_by_trait else ["file"]),
        "calibrated",
        "AUROC",
    ]
    for header in headers:
        table.add_column(header, no_wrap=True)
    table.add_column("samples", min_width=12)
    table.add_column("datasets", min_width=20)
    for row in rows:
        level = row.level if row.enabled else f"{row.level} (disabled)"
        cells = [
            row.trait,
            row.rule_id,
            level,
            str(row.layer),
            *([] if named_by_trait else [Path(row.path).name]),
        ]
        auroc = "-" if row.auroc is None else f"{row.auroc:.3f}"
        table.add_row(*cells, "yes" if row.calibrated else "no", auroc, row.sample_policy, row.dataset_policy)
    stdout_console().print(table)
