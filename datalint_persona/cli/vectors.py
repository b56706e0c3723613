"""``persona-lint vectors build|show|list``: extract persona vectors and inspect them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from datalint_persona.cli.common import (
    clean_option,
    debug_option,
    errors_to_exit,
    stderr_console,
    stdout_console,
)
from datalint_persona.cli.vector_list import list_command
from datalint_persona.extraction.build import BuildOptions, SteeringLayersError, build_vectors
from datalint_persona.settings import BACKENDS, DEFAULT_CACHE_DIR, DEFAULT_MODEL

if TYPE_CHECKING:
    from datalint_persona.extraction.contrastive import DirectionKind


@click.group("vectors")
def vectors_group() -> None:
    """Build and inspect persona vectors."""


@vectors_group.command("build")
@click.option(
    "--trait",
    "traits",
    multiple=True,
    required=True,
    help="Shipped trait name or a trait .yaml file (repeatable).",
)
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option(
    "--method",
    type=click.Choice(["contrastive", "prompted"]),
    default="contrastive",
    show_default=True,
    help="contrastive: teacher-force the trait file's pairs (offline). prompted (the paper's): the "
    "model's own answers under the trait's instructions, filtered by a judge endpoint.",
)
@click.option(
    "--output",
    "output_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Folder to write TRAIT.safetensors + TRAIT.json into.",
)
@click.option(
    "--calibrate/--no-calibrate",
    default=True,
    show_default=True,
    help="Also calibrate thresholds on the trait's held-out pairs (generates y').",
)
@click.option("--fpr", type=click.FloatRange(0.0, 0.5, min_open=True), default=0.05, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--cache-dir", default=DEFAULT_CACHE_DIR, show_default=True)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--judge-url", default=None, help="prompted: OpenAI-compatible base URL of the judge.")
@click.option("--judge-model", default=None, help="prompted: the judge's model name.")
@click.option(
    "--api-key-env", default="OPENAI_API_KEY", show_default=True, help="prompted: the key's variable."
)
@click.option(
    "--max-instructions", type=click.IntRange(1), default=None, help="prompted: use the first N pairs."
)
@click.option(
    "--max-questions", type=click.IntRange(1), default=None, help="prompted: use the first N questions."
)
@click.option(
    "--min-pairs",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="prompted: refuse when fewer pairs survive.",
)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(1),
    default=128,
    show_default=True,
    help="prompted: cap on each answer (the sidecar counts how many reached it).",
)
@click.option(
    "--trait-threshold",
    type=click.FloatRange(0, 100),
    default=50.0,
    show_default=True,
    help="prompted: keep pairs whose positive answer scores >= this and negative < this (paper: 50).",
)
@click.option(
    "--coherence-threshold",
    type=click.FloatRange(0, 100),
    default=50.0,
    show_default=True,
    help="prompted: both answers must be at least this coherent (paper: 50).",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="transformers",
    show_default=True,
    help="How the model's answers (prompted) and calibration y' are generated.",
)
@click.option(
    "--direction",
    type=click.Choice(["probe", "mean-difference"]),
    default="probe",
    show_default=True,
    help="contrastive: a logistic-probe direction (generalizes better across answer styles, see "
    "vectors/README.md) or the paper's mean difference.",
)
@click.option(
    "--select-layer",
    type=click.Choice(["effect-size", "steering"]),
    default="effect-size",
    show_default=True,
    help="effect-size: largest held-out Cohen's d. steering (the paper's, needs --judge-url): the layer "
    "where steering with the vector most raises the judge's trait score on the evaluation questions.",
)
@click.option(
    "--steering-alpha", type=float, default=2.0, show_default=True, help="steering: h += alpha * v."
)
@click.option(
    "--steering-layers",
    default=None,
    help="steering: comma-separated candidate layers [default: every 4th layer from 4].",
)
@click.option(
    "--extra-pairs",
    "extra_pairs",
    multiple=True,
    metavar="TRAIT=FILE",
    help="contrastive: also extract from the pairs of a JSONL file (one pair per line, as in a trait "
    "file; repeatable). Each file weighs as much as the trait file's own pairs.",
)
@clean_option
@debug_option
def build_command(
    traits: tuple[str, ...],
    model: str,
    method: str,
    output_dir: str,
    calibrate: bool,
    fpr: float,
    batch_size: int,
    cache_dir: str,
    seed: int,
    device: str,
    judge_url: str | None,
    judge_model: str | None,
    api_key_env: str,
    max_instructions: int | None,
    max_questions: int | None,
    min_pairs: int,
    max_new_tokens: int,
    trait_threshold: float,
    coherence_threshold: float,
    backend: str,
    direction: DirectionKind,
    select_layer: str,
    steering_alpha: float,
    steering_layers: str | None,
    extra_pairs: tuple[str, ...],
    clean_files: tuple[str, ...],
    debug: bool,
) -> None:
    """Extract vectors at every layer, pick a layer by held-out effect size, and calibrate.

    --method prompted (the paper's) needs --judge-url and --judge-model.
    """
    with errors_to_exit(debug):
        options = BuildOptions(
            traits=traits,
            output_dir=output_dir,
            model=model,
            method=method,
            direction=direction,
            select_layer=select_layer,
            calibrate=calibrate,
            fpr=fpr,
            batch_size=batch_size,
            cache_dir=cache_dir,
            seed=seed,
            device=device,
            clean_files=clean_files,
            extra_pairs=extra_pairs,
            judge_url=judge_url,
            judge_model=judge_model,
            api_key_env=api_key_env,
            max_instructions=max_instructions,
            max_questions=max_questions,
            min_pairs=min_pairs,
            max_new_tokens=max_new_tokens,
            trait_threshold=trait_threshold,
            coherence_threshold=coherence_threshold,
            backend=backend,
            steering_alpha=steering_alpha,
            steering_layers=steering_layers,
        )
        _build(options)


def _build(options: BuildOptions) -> None:
    """Run the builder, printing each vector it writes; a bad layer list is a bad option."""
    console = stderr_console()
    try:
        for written in build_vectors(options, status=console.status):
            console.print(f"{written.trait}: wrote {written.path} (layer {written.chosen_layer})")
    except SteeringLayersError as error:
        raise click.BadParameter(str(error), param_hint="--steering-layers") from None


@vectors_group.command("show")
@click.argument("vector")
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Whose bundled vectors to look in when VECTOR is a trait name.",
)
@debug_option
def show_command(vector: str, model: str, debug: bool) -> None:
    """Print a vector's per-layer curve and calibration (VECTOR: trait name or file)."""
    with errors_to_exit(debug):
        from datalint_persona.persona.store import find_vectors
        from datalint_persona.reporters.vector_report import print_vector

        path = Path(vector)
        found = (
            find_vectors(vector, model)
            if path.suffix in (".safetensors", ".json") or path.is_dir()
            else find_vectors(None, model, [vector])
        )
        for item in found:
            print_vector(item, stdout_console())


vectors_group.add_command(list_command)
