"""The ``persona-lint`` command. ``persona-lint FILE...`` screens; subcommands build and inspect vectors.

Exit codes: 0 nothing reached --fail-on, 1 something did, 2 usage, config or input error.
This module must not import torch at import time (``persona-lint --help`` stays fast).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from datalint_persona import __version__
from datalint_persona.cli.common import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    debug_option,
    errors_to_exit,
    parse_assignments,
)
from datalint_persona.cli.evaluate import calibrate_command
from datalint_persona.cli.merge import merge_command
from datalint_persona.cli.model import model_group
from datalint_persona.cli.paper import monitor_command, shift_command, steer_command
from datalint_persona.cli.progress import progress_bar
from datalint_persona.cli.ray_options import check_ray_options, ray_options, screen_on_ray
from datalint_persona.cli.report import report_command
from datalint_persona.cli.report_outputs import emit_reports, format_options, pair_outputs
from datalint_persona.cli.traits import traits_group
from datalint_persona.cli.usage import PersonaLintGroup
from datalint_persona.cli.validate import validate_command
from datalint_persona.cli.vectors import vectors_group
from datalint_persona.cli.workflow import workflow_options
from datalint_persona.config_file import discover_config, read_config_file
from datalint_persona.model.dtypes import DTYPES
from datalint_persona.reporters import refuse_input_path
from datalint_persona.settings import (
    BACKENDS,
    DEFAULT_CACHE_DIR,
    DEFAULT_MODEL,
    FAIL_ON,
    RULE_LEVELS,
    ScreenOptions,
)
from datalint_persona.suggest import did_you_mean
from datalint_persona.types import LEVEL_ORDER


@click.group(cls=PersonaLintGroup, default="screen", default_if_no_args=False)
@click.version_option(__version__, prog_name="persona-lint")
def main() -> None:
    """Screen LLM finetuning data for samples that shift a model's persona.

    \b
    persona-lint train.jsonl                  screen with the embedded model and bundled vectors
    persona-lint data/                        every .jsonl/.json/.csv/.parquet file under data/
    cat train.jsonl | persona-lint -          JSONL from standard input
    persona-lint data/*.jsonl --format sarif --output persona.sarif
    persona-lint data/*.jsonl --format sarif -o persona.sarif --format json -o report.json
    persona-lint report report.json --format html -o report.html   re-render, no model
    persona-lint vectors show evil            inspect a bundled vector
    persona-lint model install                put the embedded model into the user cache

    Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage/config/input error.
    """


@main.command("screen")
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Hub id, model folder, .gguf file, or the embedded default's alias.",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="transformers",
    show_default=True,
    help="How y' is generated (vllm needs the [vllm] extra and a GPU).",
)
@click.option(
    "--vectors", "vectors_path", default=None, help="Folder or file of persona vectors (default: bundled)."
)
@click.option("--trait", "traits", multiple=True, help="Screen only these traits (repeatable).")
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    default="error",
    show_default=True,
    help="Exit 1 when a finding reaches this level.",
)
@format_options("terminal", "Write the --format report here (atomically); the terminal summary still prints.")
@click.option(
    "--max-new-tokens",
    type=click.IntRange(1, 8192),
    default=None,
    help="y' length cap [default: the vectors' calibrated budget, 96 for the bundled ones; another "
    "value makes the verdicts approximate].",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(16),
    default=None,
    help="Truncate x + y beyond this many tokens [default: the model's context; the smaller of this and "
    "--max-sample-tokens applies].",
)
@click.option(
    "--max-sample-tokens",
    type=click.IntRange(1),
    default=None,
    help="Cut a sample whose rendered x + y exceeds this many tokens: the prompt's head goes first, "
    "the response is kept [default: 2048, at most the model's context].",
)
@click.option("--max-samples", type=click.IntRange(1), default=None, help="Screen at most this many samples.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=32, show_default=True)
# At most 2**63 - 1: the JSON reader of persona-lint merge (ijson) stops at int64.
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True)
@click.option(
    "--temperature",
    type=click.FloatRange(0.0),
    default=0.0,
    show_default=True,
    help="0 is greedy decoding (the default, as in the paper's screening).",
)
@click.option(
    "--cache-dir",
    default=DEFAULT_CACHE_DIR,
    help="Where y' are cached [default: .persona-lint-cache in the repository root, else here].",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the caches (y' and projections).")
@click.option("--skip-invalid", is_flag=True, help="Report invalid records as findings and go on.")
@click.option("--split", default="train", show_default=True, help="Split of a Hugging Face dataset.")
@click.option(
    "--prompt-field",
    default=None,
    metavar="NAME",
    help="The record field holding the prompt (e.g. question) [default: detect the record's format].",
)
@click.option(
    "--response-field",
    default=None,
    metavar="NAME",
    help="The record field holding the response (e.g. answer) [default: detect the record's format].",
)
@click.option(
    "--dataset-fpr",
    type=click.FloatRange(0.0, 0.5, min_open=True),
    default=0.05,
    show_default=True,
    help="Family-wise false-positive rate of the dataset verdicts (Holm over files x traits).",
)
@click.option(
    "--fdr",
    type=click.FloatRange(0.0, 0.5, min_open=True),
    default=0.05,
    show_default=True,
    help="False discovery rate of the sample verdicts (Benjamini-Hochberg over samples x traits).",
)
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="TRAIT=VALUE",
    help="Flag a trait's samples above this fixed ΔP instead of by FDR against the clean null.",
)
@click.option("--level", "levels", multiple=True, metavar="TRAIT=LEVEL", help="Override a rule's level.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... or auto.")
@click.option(
    "--dtype",
    type=click.Choice(DTYPES),
    default="auto",
    show_default=True,
    help="Number format of the model: auto is bfloat16 on a CPU with AMX or AVX-512 BF16 units and "
    "on CUDA, float32 elsewhere (the bundled vectors are calibrated in float32; see docs/scale.md).",
)
@click.option(
    "--tensor-parallel-size",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="GPUs per model for --backend vllm.",
)
@click.option(
    "--gpu-memory-utilization",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=None,
    help="Share of the GPU that --backend vllm may reserve [default: 0.5, leaving room for the scoring model].",
)
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Screen only samples whose index % N == I-1 (1-based); combine with 'persona-lint merge'.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Config file [default: nearest .persona-lint.yaml or pyproject.toml upwards].",
)
@click.option("--top", type=click.IntRange(1), default=20, show_default=True, help="Flagged samples shown.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no terminal summary.")
@debug_option
@workflow_options
@ray_options
@click.pass_context
def screen_command(ctx: click.Context, /, files: tuple[str, ...], **options: Any) -> None:
    """Screen dataset FILES (JSONL, JSON, CSV, Parquet, a folder of them, - for JSONL on stdin, or a
    Hugging Face dataset)."""
    debug = bool(options["debug"])
    with errors_to_exit(debug):
        _screen(ctx, files, options)


def _screen(ctx: click.Context, files: tuple[str, ...], options: dict[str, Any]) -> None:
    from datalint_persona.dataset.sources import check_sources
    from datalint_persona.screening.engine import screen
    from datalint_persona.screening.workflow import write_and_accept_baseline
    from datalint_persona.settings import screen_options

    reports = pair_outputs(options["formats"], options["outputs"], files)
    check_ray_options(ctx, options)
    given, origins = _given(ctx, options)
    # Usage errors first; then every input is checked (a typo fails here, before any model), and
    # a folder stands for its dataset files, none of which a report may overwrite.
    files = tuple(check_sources(files))
    for path in [report.path for report in reports] + [options["write_baseline_path"]]:
        if path:
            refuse_input_path(path, files)
    config = read_config_file(Path(options["config_path"])) if options["config_path"] else discover_config()
    settings = screen_options(given, config, origins=origins)
    quiet = bool(options["quiet"])
    progress, update = progress_bar(not quiet)
    with progress if progress is not None else contextlib.nullcontext():
        if options["ray_address"] is None:
            result = screen(list(files), settings, progress=update)
        else:
            result = screen_on_ray(files, settings, options, update)
    if options["write_baseline_path"]:
        result, count = write_and_accept_baseline(result, options["write_baseline_path"])
        click.echo(f"Wrote {count} finding(s) to the baseline {options['write_baseline_path']}", err=True)
    emit_reports(
        result, reports, inputs=list(files), top=options["top"], summary=not quiet, announce=not quiet
    )
    if not quiet:
        _print_cache_stats(result.cache_stats, result.settings.dtype)
    worst = result.worst_level()
    fail_on = settings.fail_on
    failed = fail_on != "never" and worst != "none" and LEVEL_ORDER[worst] >= LEVEL_ORDER[fail_on]
    sys.exit(EXIT_FINDINGS if failed else EXIT_CLEAN)


# Click parameters whose ScreenOptions field has another name.
_FIELD_OF = {"vectors_path": "vectors", "baseline_path": "baseline"}


def _given(ctx: click.Context, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The ScreenOptions values set on the command line (not left at their defaults), and the
    option behind each trait's rule override (``{"evl": "--threshold evl=3"}``, for errors)."""
    names = {f.name for f in fields(ScreenOptions)}
    given = {
        _FIELD_OF.get(name, name): value
        for name, value in options.items()
        if ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)
        and _FIELD_OF.get(name, name) in names
    }
    if options["no_cache"]:
        given["cache_dir"] = None
    overrides: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}
    for option, values, key, convert in (
        ("--threshold", options["thresholds"], "sample-threshold", float),
        ("--level", options["levels"], "level", _level),
    ):
        for trait, value in parse_assignments(values, option, convert).items():
            overrides.setdefault(trait, {})[key] = value
            origins.setdefault(trait, f"{option} {trait}={value}")
    given["rule_overrides"] = overrides
    return given, origins


def _print_cache_stats(stats: dict[str, int], dtype: str) -> None:
    click.echo(
        f"y' cache: {stats.get('hits', 0)} reused, {stats.get('misses', 0)} generated"
        + (f", {stats['corrupted']} corrupted entries regenerated" if stats.get("corrupted") else ""),
        err=True,
    )
    click.echo(
        f"scoring: {stats.get('pairs_forwarded', 0)} (x, answer) pairs run through the model, "
        f"{stats.get('y_prime_from_generation', 0)} y' scored from their generation, "
        f"{stats.get('projections_reused', 0)} reused from the cache",
        err=True,
    )
    if stats.get("model_loaded") == 0:
        click.echo(f"model: not loaded (every prompt, y' and projection was cached; {dtype})", err=True)
    else:
        click.echo(f"model: loaded in {dtype} (--dtype)", err=True)


def _level(value: str) -> str:
    if value not in RULE_LEVELS:
        raise click.BadParameter(
            f"unknown level '{value}'.{did_you_mean(value, RULE_LEVELS)} Fix: use one of: {', '.join(RULE_LEVELS)}.",
            param_hint="--level",
        )
    return value


main.add_command(vectors_group)
main.add_command(calibrate_command)
main.add_command(traits_group)
main.add_command(merge_command)
main.add_command(report_command)
main.add_command(validate_command)
main.add_command(steer_command)
main.add_command(monitor_command)
main.add_command(shift_command)
main.add_command(model_group)


if __name__ == "__main__":
    main()
