"""``persona-lint calibrate`` and ``persona-lint vectors evaluate``: how good a vector is, and where
its thresholds lie."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from datalint_persona.cli_common import errors_to_exit, stderr_console
from datalint_persona.cli_vectors import vectors_group


@click.command("calibrate")
@click.argument("vector")
@click.option(
    "--trait",
    "trait_file",
    default=None,
    help="Trait name or .yaml with the calibration pairs [default: the vector's trait].",
)
@click.option("--model", default="smollm2-135m-instruct", show_default=True)
@click.option("--layer", type=click.IntRange(0), default=None, help="[default: the vector's chosen layer]")
@click.option("--fpr", type=click.FloatRange(0.0, 0.5, min_open=True), default=0.05, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--cache-dir", default=".persona-lint-cache", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--debug", is_flag=True)
def calibrate_command(
    vector: str,
    trait_file: str | None,
    model: str,
    layer: int | None,
    fpr: float,
    batch_size: int,
    cache_dir: str,
    device: str,
    debug: bool,
) -> None:
    """Set VECTOR's thresholds from its trait's held-out pairs and write them into its sidecar."""
    with errors_to_exit(debug):
        from datalint_persona.calibration import calibrate_vector
        from datalint_persona.engine import resolve_device
        from datalint_persona.models import load_model, resolve_model
        from datalint_persona.traits import load_trait, shipped_trait_path
        from datalint_persona.vectors import PersonaVector

        loaded_vector = PersonaVector.load(vector)
        definition = load_trait(shipped_trait_path(trait_file or loaded_vector.trait))
        loaded = load_model(resolve_model(model), device=resolve_device(device))
        loaded_vector.check_model(loaded.identity, loaded.num_layers, loaded.hidden_size, model)
        calibration: dict[str, Any] = calibrate_vector(
            loaded,
            loaded_vector,
            definition.calibration,
            layer=layer,
            fpr=fpr,
            batch_size=batch_size,
            cache_dir=cache_dir,
        )
        loaded_vector.with_metadata(calibration=calibration).save(Path(vector).with_suffix(""))
        overall = calibration["overall"]
        click.echo(
            f"{loaded_vector.trait} @ layer {calibration['layer']}: sample threshold "
            f"{calibration['sample_threshold']:.3f} (FPR {fpr:.0%}), TPR {overall['tpr_at_threshold']:.2f}, "
            f"AUROC {overall['auroc']:.3f}"
        )


@vectors_group.command("evaluate")
@click.option(
    "--trait", "traits", multiple=True, required=True, help="Shipped trait name or .yaml (repeatable)."
)
@click.option("--model", default="smollm2-135m-instruct", show_default=True)
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
@click.option("--cache-dir", default=".persona-lint-cache", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--debug", is_flag=True)
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
        from datalint_persona.engine import resolve_device
        from datalint_persona.evaluation import collect, leave_one_style_out, markdown, variant_summary
        from datalint_persona.models import load_model, resolve_model
        from datalint_persona.traits import load_trait, shipped_trait_path
        from datalint_persona.vector_store import find_vectors

        console = stderr_console()
        definitions = [load_trait(shipped_trait_path(name)) for name in traits]
        bundled = {v.trait: v for v in find_vectors(vectors_dir, model, [d.trait for d in definitions])}
        with console.status(f"Loading {model}"):
            loaded = load_model(resolve_model(model), device=resolve_device(device))
        results = {}
        for definition in definitions:
            with console.status(f"{definition.trait}: activations of every pair and of y'"):
                data = collect(loaded, definition, batch_size=batch_size, cache_dir=cache_dir)
            vector = bundled[definition.trait]
            results[definition.trait] = leave_one_style_out(
                data, vector.chosen_layer, direction=str(vector.metadata.get("direction", "mean-difference"))
            )
            click.echo(markdown(definition.trait, results[definition.trait]))
        click.echo("\nMean ΔP AUROC over held-out styles (raw projection in parentheses):")
        click.echo(variant_summary(results))
        if json_path:
            text = json.dumps(results, indent=2, sort_keys=True) + "\n"
            atomic_write_bytes(Path(json_path), text.encode("utf-8"))
