"""The screen command's Ray options: ``--ray [ADDRESS]``, ``--ray-replicas`` and ``--ray-gpus``.

:mod:`datalint_persona.distributed` runs the screening; this module declares the options, checks
them, and hands them over. Nothing here imports Ray (or torch) until a run asks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from datalint_persona.errors import ConfigError

__all__ = ["check_ray_options", "ray_options", "screen_on_ray"]


def ray_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The three options, as one decorator for the screen command."""
    options = [
        click.option(
            "--ray",
            "ray_address",
            is_flag=False,
            flag_value="local",
            default=None,
            metavar="[ADDRESS]",
            help="Screen on Ray: alone (after the files), a Ray on this machine; 'auto' or ray://HOST:PORT, "
            "a cluster (needs persona-lint[ray]).",
        ),
        click.option(
            "--ray-replicas",
            type=click.IntRange(1),
            default=1,
            show_default=True,
            help="With --ray: model replicas (actors) screening at once.",
        ),
        click.option(
            "--ray-gpus",
            type=click.FloatRange(0),
            default=0.0,
            show_default=True,
            help="With --ray: GPUs per replica (for --backend vllm, its --tensor-parallel-size).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def check_ray_options(ctx: click.Context, options: dict[str, Any]) -> None:
    """--ray-replicas and --ray-gpus mean nothing without --ray: refuse them rather than ignore them."""
    if options["ray_address"] is not None:
        return
    for name, flag in (("ray_replicas", "--ray-replicas"), ("ray_gpus", "--ray-gpus")):
        if ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None):
            raise ConfigError(f"{flag} is set without --ray.", fix=f"add --ray [ADDRESS], or drop {flag}.")


def screen_on_ray(
    files: tuple[str, ...],
    settings: Any,
    options: dict[str, Any],
    update: Callable[[str, int, int], None] | None,
) -> Any:
    """The run's ScreenResult from :func:`datalint_persona.distributed.screen_dataset`."""
    from datalint_persona.distributed import screen_dataset

    address = options["ray_address"]
    return screen_dataset(
        list(files),
        settings,
        address=None if address == "local" else address,
        replicas=options["ray_replicas"],
        gpus_per_replica=options["ray_gpus"],
        progress=update,
    )
