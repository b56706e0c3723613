"""``persona-lint steer | monitor | shift``: the paper's other measurements, on the engine's model,
vector and hook code. Each prints (or writes with --output) one JSON document.

This module must not import torch at import time (``persona-lint --help`` stays fast).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from datalint_persona.cli.common import debug_option, errors_to_exit
from datalint_persona.errors import ConfigError
from datalint_persona.settings import DEFAULT_MODEL

if TYPE_CHECKING:
    from datalint_persona.extraction.judge import Judge
    from datalint_persona.model.loading import LoadedModel
    from datalint_persona.persona.traits import TraitDefinition
    from datalint_persona.persona.vectors import PersonaVector

JUDGE_TIMEOUT_S = 120.0


def _common(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--trait", required=True, help="Trait name (shipped) or path to a trait .yaml."),
        click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Model (as for screen)."),
        click.option(
            "--vectors", "vectors_path", default=None, help="Folder or file of vectors (default: bundled)."
        ),
        click.option(
            "--layer",
            type=click.IntRange(0),
            default=None,
            help="Layer [default: the vector's chosen layer].",
        ),
        click.option("--batch-size", type=click.IntRange(1, 4096), default=16, show_default=True),
        click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... or auto."),
        click.option(
            "--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write the JSON here."
        ),
        debug_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _judge_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--judge-url", default=None, help="OpenAI-compatible base URL of a judge (optional)."),
        click.option("--judge-model", default=None, help="The judge's model name (needed with --judge-url)."),
        click.option(
            "--api-key-env", default="OPENAI_API_KEY", show_default=True, help="The judge key's variable."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _judge(options: dict[str, Any]) -> Judge | None:
    url, model = options["judge_url"], options["judge_model"]
    if url is None:
        return None
    if not model:
        raise ConfigError(
            "--judge-url needs --judge-model.", fix="pass the judge's model name with --judge-model."
        )
    from datalint_persona.extraction.judge import Judge
    from datalint_persona.extraction.llm_client import ChatClient

    return Judge(ChatClient(url, model, api_key_env=options["api_key_env"], timeout=JUDGE_TIMEOUT_S))


def _load(options: dict[str, Any]) -> tuple[LoadedModel, PersonaVector, TraitDefinition, int]:
    from datalint_persona.errors import VectorError
    from datalint_persona.model.loading import load_model, resolve_model
    from datalint_persona.persona.store import find_vectors
    from datalint_persona.persona.traits import load_trait, shipped_trait_path

    definition = load_trait(shipped_trait_path(options["trait"]))
    spec = resolve_model(options["model"])
    vector = find_vectors(options["vectors_path"], spec.name, [definition.trait])[0]
    loaded = load_model(spec, device=options["device"])
    vector.check_model(loaded.identity, loaded.num_layers, loaded.hidden_size, spec.name)
    layer = options["layer"] if options["layer"] is not None else vector.chosen_layer
    if layer > vector.num_layers:
        raise VectorError(
            f"--layer {layer}: the vector has layers 0..{vector.num_layers}.",
            fix="pick a layer in that range.",
        )
    return loaded, vector, definition, layer


def _emit(document: dict[str, Any], output: str | None) -> None:
    from datalint_persona.atomic import atomic_write_bytes

    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write_bytes(Path(output), text.encode("utf-8"))
        click.echo(f"Wrote {output}", err=True)


def _questions(options: dict[str, Any], definition: TraitDefinition) -> list[str]:
    questions = list(options["question"])
    if options["questions_file"]:
        path = Path(options["questions_file"])
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(
                f"--questions {path}: can't read it ({error}).", fix="pass a UTF-8 text file."
            ) from None
        questions += [line.strip() for line in lines if line.strip()]
        if not questions:
            raise ConfigError(f"--questions {path}: holds no questions.", fix="write one question per line.")
    return questions or list(definition.evaluation_questions[: options["max_questions"]])


@click.command("steer")
@_common
@click.option("--alpha", "alphas", type=float, multiple=True, required=True, help="Coefficient (repeatable).")
@click.option(
    "--positions", type=click.Choice(["all", "prompt", "response"]), default="all", show_default=True
)
@click.option("--question", multiple=True, help="A question to answer (repeatable).")
@click.option(
    "--questions", "questions_file", type=click.Path(dir_okay=False), help="File, one question a line."
)
@click.option(
    "--max-questions", type=click.IntRange(1), default=5, show_default=True, help="Default questions used."
)
@click.option("--max-new-tokens", type=click.IntRange(1, 8192), default=64, show_default=True)
@_judge_options
def steer_command(**options: Any) -> None:
    """Generate with h_l += alpha * v_l (the raw vector) for each --alpha; record each answer's trait
    projection (and judge scores with --judge-url). Default questions: the trait's evaluation questions."""
    with errors_to_exit(bool(options["debug"])):
        from datalint_persona.analysis.steer_sweep import steer_sweep

        judge = _judge(options)
        loaded, vector, definition, layer = _load(options)
        document = steer_sweep(
            loaded,
            vector,
            layer,
            _questions(options, definition),
            list(options["alphas"]),
            positions=options["positions"],
            max_new_tokens=options["max_new_tokens"],
            batch_size=options["batch_size"],
            judge=judge,
            trait=definition,
        )
        _emit({"model": loaded.spec.name, **document}, options["output"])


@click.command("monitor")
@_common
@click.option(
    "--max-questions", type=click.IntRange(1), default=5, show_default=True, help="Evaluation questions."
)
@click.option("--max-new-tokens", type=click.IntRange(1, 8192), default=64, show_default=True)
@_judge_options
def monitor_command(**options: Any) -> None:
    """Correlate the last prompt token's projection onto v with the trait expression of the answers,
    over the trait's questions under discouraging, default and encouraging system prompts."""
    with errors_to_exit(bool(options["debug"])):
        from datalint_persona.analysis.monitor import monitor

        judge = _judge(options)
        loaded, vector, definition, layer = _load(options)
        document = monitor(
            loaded,
            vector,
            layer,
            definition,
            max_questions=options["max_questions"],
            max_new_tokens=options["max_new_tokens"],
            batch_size=options["batch_size"],
            judge=judge,
        )
        _emit({"model": loaded.spec.name, **document}, options["output"])


@click.command("shift")
@click.option("--base", required=True, help="The model before finetuning (as for --model).")
@click.option("--finetuned", required=True, help="The finetuned model, or a PEFT/LoRA adapter folder.")
@click.option("--trait", required=True, help="Trait name (shipped) or path to a trait .yaml.")
@click.option("--vectors", "vectors_path", default=None, help="Folder or file of vectors (default: bundled).")
@click.option(
    "--layer", type=click.IntRange(0), default=None, help="Layer [default: the vector's chosen layer]."
)
@click.option("--max-questions", type=click.IntRange(1), default=None, help="Use only the first N questions.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=16, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write the JSON here.")
@debug_option
def shift_command(**options: Any) -> None:
    """Mean change along v of the last-prompt-token activation on the trait's evaluation questions,
    finetuned minus base."""
    with errors_to_exit(bool(options["debug"])):
        from dataclasses import asdict

        from datalint_persona.analysis.shift import (
            is_adapter_dir,
            last_prompt_activations,
            load_finetuned,
            projection_shift,
        )
        from datalint_persona.types import Message

        loaded, vector, definition, layer = _load({**options, "model": options["base"]})
        finetuned = load_finetuned(loaded, options["finetuned"])
        if (finetuned.num_layers, finetuned.hidden_size) != (loaded.num_layers, loaded.hidden_size):
            raise ConfigError(
                f"--finetuned {options['finetuned']} has another shape than --base {options['base']}.",
                fix="pass the model the finetuned one was trained from as --base.",
            )
        prompts = [(Message("user", q),) for q in definition.evaluation_questions[: options["max_questions"]]]
        base = last_prompt_activations(loaded, prompts, layer, batch_size=options["batch_size"])
        tuned = last_prompt_activations(finetuned, prompts, layer, batch_size=options["batch_size"])
        shift = projection_shift(definition.trait, layer, vector.unit(layer), base, tuned)
        _emit(
            {
                "base": loaded.spec.name,
                "finetuned": options["finetuned"],
                "finetuned_kind": "peft-adapter" if is_adapter_dir(options["finetuned"]) else "model",
                "measure": "mean over evaluation questions of (a_l finetuned - a_l base) · unit vector, "
                "last prompt token",
                "n_questions": len(prompts),
                **asdict(shift),
            },
            options["output"],
        )
