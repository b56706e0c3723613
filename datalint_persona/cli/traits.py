"""``persona-lint traits new|validate``: write a trait definition with an LLM, or check trait files.

``traits new`` is :func:`datalint_persona.extraction.trait_writer.write_new_trait`. This module
imports no torch.
"""

from __future__ import annotations

import click

from datalint_persona.cli.common import EXIT_ERROR, debug_option, errors_to_exit
from datalint_persona.errors import PersonaLintError
from datalint_persona.extraction.llm_client import DEFAULT_API_KEY_ENV


@click.group("traits")
def traits_group() -> None:
    """Write and check trait definition files."""


@traits_group.command("new")
@click.argument("name")
@click.option("--description", required=True, help="One-paragraph description of the trait.")
@click.option(
    "--generator-url", required=True, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1."
)
@click.option("--generator-model", required=True, help="Model name at that endpoint.")
@click.option(
    "--api-key-env", default=DEFAULT_API_KEY_ENV, show_default=True, help="Variable holding the key."
)
@click.option(
    "--retries", type=click.IntRange(0), default=3, show_default=True, help="Retries on invalid output."
)
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="[default: traits/NAME.yaml]")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--max-tokens", type=click.IntRange(1), default=4096, show_default=True)
@click.option("--temperature", type=click.FloatRange(0.0), default=0.7, show_default=True)
@click.option(
    "--timeout", type=click.FloatRange(1.0), default=300.0, show_default=True, help="Seconds per request."
)
@debug_option
def new_command(
    name: str,
    description: str,
    generator_url: str,
    generator_model: str,
    api_key_env: str,
    retries: int,
    output: str | None,
    force: bool,
    max_tokens: int,
    temperature: float,
    timeout: float,
    debug: bool,
) -> None:
    """Ask an LLM for NAME's instructions, questions and rubrics, validate them, and write the YAML."""
    with errors_to_exit(debug):
        from datalint_persona.extraction.trait_writer import TraitRequest, write_new_trait

        request = TraitRequest(
            name=name,
            description=description,
            generator_url=generator_url,
            generator_model=generator_model,
            api_key_env=api_key_env,
            retries=retries,
            output=output,
            force=force,
            max_tokens=max_tokens,
            temperature=temperature,
            timeout=timeout,
        )
        click.echo(f"Wrote {write_new_trait(request)}")


@traits_group.command("validate")
@click.argument("files", nargs=-1, required=True)
def validate_command(files: tuple[str, ...]) -> None:
    """Check trait FILES against the schema; exit 2 if any is invalid."""
    from datalint_persona.persona.traits import load_trait

    failed = False
    for file in files:
        try:
            trait = load_trait(file)
        except PersonaLintError as error:
            click.echo(f"persona-lint: error: {error}", err=True)
            failed = True
            continue
        click.echo(
            f"{file}: ok ({trait.trait}: {len(trait.instructions)} instruction pairs, "
            f"{len(trait.extraction_questions)} + {len(trait.evaluation_questions)} questions, "
            f"{len(trait.pairs)} pairs, {len(trait.calibration)} calibration pairs)"
        )
    if failed:
        raise SystemExit(EXIT_ERROR)
