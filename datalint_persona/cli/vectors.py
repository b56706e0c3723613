"""``persona-lint vectors build|show``: extract persona vectors and inspect them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from datalint_persona.cli.common import (
    clean_option,
    debug_option,
    errors_to_exit,
    load_clean,
    stderr_console,
    stdout_console,
)
from datalint_persona.errors import ConfigError
from datalint_persona.settings import DEFAULT_MODEL


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
@click.option("--cache-dir", default=".persona-lint-cache", show_default=True)
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
    type=click.Choice(["transformers", "vllm"]),
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
    clean_files: tuple[str, ...],
    extra_pairs: tuple[str, ...],
    debug: bool,
    **prompted: Any,
) -> None:
    """Extract vectors at every layer, pick a layer by held-out effect size, and calibrate.

    --method prompted (the paper's) needs --judge-url and --judge-model.
    """
    with errors_to_exit(debug):
        from datalint_persona.extraction.calibration import calibrate_vector, clean_projections
        from datalint_persona.extraction.contrastive import build_contrastive
        from datalint_persona.model.loading import load_model, resolve_device, resolve_model
        from datalint_persona.persona.traits import load_trait, shipped_trait_path

        console = stderr_console()
        definitions = [load_trait(shipped_trait_path(name)) for name in traits]
        extra = pair_files("--extra-pairs", extra_pairs, [d.trait for d in definitions])
        if extra and method != "contrastive":
            raise ConfigError(
                "--extra-pairs works with --method contrastive only.", fix="drop --extra-pairs."
            )
        direction = prompted.pop("direction")
        select_layer = prompted.pop("select_layer")
        steering_alpha = prompted.pop("steering_alpha")
        steering_layers = prompted.pop("steering_layers")
        judge = None
        if method == "prompted" or select_layer == "steering":
            from datalint_persona.extraction.prompted import make_judge

            judge = make_judge(prompted["judge_url"], prompted["judge_model"], prompted["api_key_env"])
        if method == "prompted":
            from datalint_persona.extraction.prompted import (
                OPTION_NAMES,
                PromptedOptions,
                build_prompted,
                make_judge,
            )

            options = PromptedOptions(
                **{k: prompted[k] for k in OPTION_NAMES},
                seed=seed,
                batch_size=batch_size,
                cache_dir=cache_dir,
            )
        clean_samples = load_clean(clean_files)
        with console.status(f"Loading {model}"):
            loaded = load_model(resolve_model(model), device=resolve_device(device))
        built = []
        for definition in definitions:
            with console.status(f"{definition.trait}: extracting ({method})"):
                if method == "contrastive":
                    vector = build_contrastive(
                        loaded,
                        definition,
                        direction=direction,
                        batch_size=batch_size,
                        seed=seed,
                        extra_pairs=extra.get(definition.trait, ()),
                    )
                else:
                    assert judge is not None  # set above for --method prompted
                    vector = build_prompted(loaded, definition, judge, options)
            if select_layer == "steering":
                from datalint_persona.extraction.layer_selection import (
                    choose_steering_layer,
                    steering_layer_scores,
                )

                assert judge is not None  # set above for --select-layer steering
                candidates = _layers(steering_layers, loaded.num_layers)
                with console.status(f"{definition.trait}: steering at layers {candidates}"):
                    rows = steering_layer_scores(
                        loaded,
                        vector,
                        definition,
                        judge,
                        candidates,
                        alpha=steering_alpha,
                        max_questions=prompted["max_questions"],
                        batch_size=batch_size,
                    )
                vector = vector.with_metadata(
                    chosen_layer=choose_steering_layer(rows),
                    layer_selection=f"steering (alpha {steering_alpha}): max mean judged trait score",
                    steering_scores=rows,
                )
            built.append((definition, vector))
        # The clean data runs once, through one forward pass for every vector's layer.
        clean = None
        if calibrate and clean_samples:
            with console.status(f"Scoring {len(clean_samples)} clean answers"):
                clean = clean_projections(
                    loaded,
                    [v for _, v in built],
                    clean_samples,
                    batch_size=batch_size,
                    cache_dir=cache_dir,
                    backend=prompted["backend"],
                    seed=seed,
                )
        for definition, vector in built:
            if calibrate and definition.calibration:
                with console.status(
                    f"{definition.trait}: calibrating on {len(definition.calibration)} pairs"
                ):
                    calibration = calibrate_vector(
                        loaded,
                        vector,
                        definition.calibration,
                        fpr=fpr,
                        batch_size=batch_size,
                        cache_dir=cache_dir,
                        backend=prompted["backend"],
                        seed=seed,
                        clean=clean,
                    )
                vector = vector.with_metadata(calibration=calibration)
            path = vector.save(Path(output_dir) / definition.trait)
            console.print(f"{definition.trait}: wrote {path} (layer {vector.metadata.get('chosen_layer')})")


def pair_files(
    option: str, specs: tuple[str, ...], traits: list[str] | None = None
) -> dict[str, list[tuple[str, Any]]]:
    """``TRAIT=FILE`` option values as {trait: [(file name, pairs)]}; ``traits``: the allowed ones."""
    from datalint_persona.persona.traits import load_pair_file

    out: dict[str, list[tuple[str, Any]]] = {}
    for spec in specs:
        trait, _, file = spec.partition("=")
        if not trait or not file:
            raise ConfigError(
                f"{option} '{spec}': expected TRAIT=FILE.", fix=f"for example {option} evil=pairs.jsonl."
            )
        if traits is not None and trait not in traits:
            raise ConfigError(
                f"{option} '{spec}': '{trait}' is not one of the traits being built ({', '.join(traits)}).",
                fix="name a trait given with --trait.",
            )
        out.setdefault(trait, []).append((Path(file).name, load_pair_file(file)))
    return out


def _layers(spec: str | None, num_layers: int) -> list[int]:
    """Parse --steering-layers ("8,12,16"); default every 4th steerable layer from 4."""
    if spec is None:
        return list(range(4, num_layers, 4))
    try:
        layers = sorted({int(part) for part in spec.split(",") if part.strip()})
    except ValueError:
        raise click.BadParameter(
            f"'{spec}' is not a comma-separated list of layers", param_hint="--steering-layers"
        ) from None
    if not layers or layers[0] < 0 or layers[-1] >= num_layers:
        raise click.BadParameter(f"layers must lie in 0..{num_layers - 1}", param_hint="--steering-layers")
    return layers


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
