"""``persona-lint calibrate`` and ``persona-lint vectors evaluate``: how good a vector is, and where
its thresholds lie."""

from __future__ import annotations

from pathlib import Path

import click

from datalint_persona.cli.common import clean_option, debug_option, errors_to_exit, stderr_console
from datalint_persona.cli.vectors import vectors_group
from datalint_persona.extraction.build import pair_files
from datalint_persona.settings import DEFAULT_CACHE_DIR, DEFAULT_MODEL


@click.command("calibrate")
@click.argument("vectors", nargs=-1, required=True)
@click.option(
    "--trait",
    "trait_file",
    default=None,
    help="Trait name or .yaml with the calibration pairs [default: each vector's trait].",
)
@clean_option
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--layer", type=click.IntRange(0), default=None, help="[default: the vector's chosen layer]")
@click.option("--fpr", type=click.FloatRange(0.0, 0.5, min_open=True), default=0.05, show_default=True)
@click.option(
    "--reference-weight",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Weight of the model's own answer y' in ΔP's reference (1: the paper's ΔP, 0: the raw "
    "projection against the model's average answer) [default: fitted on the clean answers].",
)
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--cache-dir", default=DEFAULT_CACHE_DIR, show_default=True)
@click.option("--device", default="auto", show_default=True)
@debug_option
def calibrate_command(
    vectors: tuple[str, ...],
    trait_file: str | None,
    clean_files: tuple[str, ...],
    model: str,
    layer: int | None,
    fpr: float,
    reference_weight: float | None,
    batch_size: int,
    cache_dir: str,
    device: str,
    debug: bool,
) -> None:
    """Calibrate VECTORS' verdicts (clean null, gap, margin) on their traits' held-out pairs and
    on --clean data, and write them into each vector's sidecar."""
    with errors_to_exit(debug):
        from datalint_persona.extraction.recalibrate import CalibrateOptions, calibrate_saved

        options = CalibrateOptions(
            vectors=vectors,
            trait_file=trait_file,
            clean_files=clean_files,
            model=model,
            layer=layer,
            fpr=fpr,
            reference_weight=reference_weight,
            batch_size=batch_size,
            cache_dir=cache_dir,
            device=device,
        )
        for item in calibrate_saved(options):
            calibration = item.calibration
            margin = calibration.margin
            click.echo(
                f"{item.trait} @ layer {calibration.layer}: AUROC {calibration.auroc:.3f}, gap "
                f"{calibration.gap:.3f}, y' weight {calibration.reference_weight:.2f}, "
                f"clean null from {calibration.null_size} answers"
                + (f", dataset margin {margin:.0%} of the gap" if margin is not None else "")
            )


@vectors_group.command("evaluate")
@click.option(
    "--trait", "traits", multiple=True, required=True, help="Shipped trait name or .yaml (repeatable)."
)
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option(
    "--vectors",
    "vectors_dir",
    default=None,
    help="Take each trait's layer from these vectors [default: bundled for the model].",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the full results here."
)
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--cache-dir", default=DEFAULT_CACHE_DIR, show_default=True)
@click.option("--device", default="auto", show_default=True)
@debug_option
def evaluate_command(
    traits: tuple[str, ...],
    model: str,
    vectors_dir: str | None,
    json_path: str | None,
    batch_size: int,
    cache_dir: str,
    device: str,
    debug: bool,
) -> None:
    """Leave-one-style-out: build from all styles but one, test on the held-out style (Markdown out)."""
    with errors_to_exit(debug):
        import json

        from datalint_persona.atomic import atomic_write_bytes
        from datalint_persona.extraction.evaluation import evaluate_traits, markdown, variant_summary

        console = stderr_console()
        results = {}
        for trait, result in evaluate_traits(
            traits,
            model=model,
            vectors_dir=vectors_dir,
            batch_size=batch_size,
            cache_dir=cache_dir,
            device=device,
            status=console.status,
        ):
            results[trait] = result
            click.echo(markdown(trait, result))
        click.echo("\nMean ΔP AUROC over held-out styles (raw projection in parentheses):")
        click.echo(variant_summary(results))
        if json_path:
            text = json.dumps(results, indent=2, sort_keys=True) + "\n"
            atomic_write_bytes(Path(json_path), text.encode("utf-8"))


@vectors_group.command("evaluate-external")
@click.option(
    "--external",
    "external_dir",
    type=click.Path(exists=True, file_okay=False),
    required=True,
    help="Folder of the public external data (clean answers and labelled trait data).",
)
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--vectors", "vectors_dir", default=None, help="Vectors to evaluate [default: bundled].")
@click.option(
    "--limit", type=click.IntRange(10), default=300, show_default=True, help="Test records per file."
)
@click.option(
    "--repeats", type=click.IntRange(1), default=200, show_default=True, help="Resampled files per cell."
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the figures here."
)
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the tables here.",
)
@click.option(
    "--extra-pairs",
    "extra_pairs",
    multiple=True,
    metavar="TRAIT=FILE",
    help="The extra pairs the vectors were built with, so the baselines learn from the same data.",
)
@click.option(
    "--independent",
    "independent",
    multiple=True,
    metavar="TRAIT=FILE",
    help="Pairs written apart from all training text (JSONL, as --extra-pairs), scored like detection.",
)
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--cache-dir", default=DEFAULT_CACHE_DIR, show_default=True)
@click.option("--device", default="auto", show_default=True)
@debug_option
def evaluate_external_command(
    external_dir: str,
    model: str,
    vectors_dir: str | None,
    limit: int,
    repeats: int,
    json_path: str | None,
    markdown_path: str | None,
    extra_pairs: tuple[str, ...],
    independent: tuple[str, ...],
    batch_size: int,
    cache_dir: str,
    device: str,
    debug: bool,
) -> None:
    """Measure false flags and detection on the test split of public data nobody here wrote.

    Clean files of 20, 200 and 2,000 samples resampled from each clean source, the sample flag
    share on clean data, contamination from 0 to 50%, and ΔP AUROC (see docs/verdicts.md).
    """
    with errors_to_exit(debug):
        import json

        from datalint_persona.atomic import atomic_write_bytes
        from datalint_persona.extraction.external_report import evaluate_external, markdown
        from datalint_persona.model.loading import load_model, resolve_model
        from datalint_persona.settings import ScreenOptions

        console = stderr_console()
        extra = pair_files("--extra-pairs", extra_pairs)
        held_apart = pair_files("--independent", independent)
        loaded = load_model(resolve_model(model), device=device)
        options = ScreenOptions(
            model=model, vectors=vectors_dir, batch_size=batch_size, cache_dir=cache_dir, fail_on="never"
        )
        report = evaluate_external(
            Path(external_dir),
            loaded,
            options,
            limit=limit,
            repeats=repeats,
            extra_pairs={t: [p for _, ps in files for p in ps] for t, files in extra.items()},
            independent={t: [p for _, ps in files for p in ps] for t, files in held_apart.items()},
            progress=console.print,
        )
        tables = markdown(report)
        if json_path:
            atomic_write_bytes(
                Path(json_path), (json.dumps(report, indent=2, sort_keys=True) + "\n").encode()
            )
        if markdown_path:
            atomic_write_bytes(Path(markdown_path), tables.encode())
        click.echo(tables, nl=False)
