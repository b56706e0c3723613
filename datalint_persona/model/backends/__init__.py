"""y' generation backends. Each is imported only when chosen."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from datalint_persona.errors import ConfigError
from datalint_persona.model.backends.base import GenerationBackend, GenerationSettings, sample_seed
from datalint_persona.settings import BACKENDS
from datalint_persona.types import Direction

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel


def make_backend(
    name: str,
    loaded: LoadedModel,
    *,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float | None = None,
    record_directions: Sequence[Direction] = (),
    progress: Callable[[str, int, int], None] | None = None,
) -> GenerationBackend:
    """Build the named backend for a loaded model (vLLM loads its own copy of the weights).

    ``record_directions``: unit vectors onto which the backend should project each response's
    mean activation while generating it. Only the transformers backend can; vLLM's y' are scored
    by a forward pass later. ``gpu_memory_utilization`` is vLLM's share of the GPU (None: its
    default here, leaving room for the scoring model). ``progress`` gets each batch's decoding
    steps (transformers only; vLLM reports whole batches).
    """
    if name == "transformers":
        from datalint_persona.model.backends.transformers_backend import TransformersBackend

        return TransformersBackend(loaded, record_directions=record_directions, progress=progress)
    if name == "vllm":
        from datalint_persona.model.backends.vllm_backend import DEFAULT_GPU_MEMORY_UTILIZATION, VLLMBackend

        return VLLMBackend(
            loaded,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization or DEFAULT_GPU_MEMORY_UTILIZATION,
        )
    raise ConfigError(f"--backend {name}: unknown backend.", fix=f"use one of {', '.join(BACKENDS)}.")


__all__ = ["BACKENDS", "GenerationBackend", "GenerationSettings", "make_backend", "sample_seed"]
