"""y' generation with vLLM: one ``generate`` call over all prompts (continuous batching).

vLLM is an optional extra (``pip install 'persona-lint[vllm]'``) and is imported only here. The
arguments it gets and the parsing of what it returns are plain functions
(:func:`engine_arguments`, :func:`sampling_arguments`, :func:`parse_outputs`), so they are tested
without vLLM. They keep the transformers backend's semantics:

- the same dtype as the loaded scoring model (vLLM's ``"auto"`` would pick fp16 for fp32 weights);
- the same stop tokens (the generation config's end-of-sequence ids and the tokenizer's), passed
  as ``stop_token_ids``;
- ``n_tokens`` excludes the stop token: vLLM's ``CompletionOutput.token_ids`` ends with the
  end-of-sequence token it stopped on (as its issue tracker reports), while the transformers
  backend cuts y' before it; an output that stopped without it is parsed the same way;
- the text is decoded from the kept tokens with the same tokenizer, and sampling uses a
  per-prompt seed (:func:`~datalint_persona.model.backends.base.sample_seed`);
- ``gpu_memory_utilization`` is set (``--gpu-memory-utilization``): vLLM's default reserves 90% of
  the GPU, while the scoring model sits on the same GPU.

GGUF models are refused: vLLM's GGUF support is experimental, has moved to a separate plugin, and
wants the base model's tokenizer, which a ``.gguf`` file does not name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from datalint_persona.errors import ConfigError, MissingDependencyError
from datalint_persona.model.backends.base import GenerationSettings, sample_seed
from datalint_persona.model.loading import LoadedModel
from datalint_persona.types import Generation

DEFAULT_GPU_MEMORY_UTILIZATION = 0.5


def engine_arguments(
    loaded: LoadedModel,
    *,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
) -> dict[str, Any]:
    """The keyword arguments of ``vllm.LLM`` for the model persona-lint loaded for scoring."""
    spec = loaded.spec
    if spec.kind == "gguf":
        raise ConfigError(
            f"--backend vllm: {spec.name} is a GGUF model, which vLLM loads only through its "
            "experimental GGUF plugin and with the base model's tokenizer.",
            fix="use --backend transformers for GGUF models, or pass the original model's folder or hub id.",
        )
    if not 0.0 < gpu_memory_utilization <= 1.0:
        raise ConfigError(
            f"--gpu-memory-utilization {gpu_memory_utilization}: it must be a fraction in (0, 1].",
            fix="pass for example 0.5: vLLM's share of the GPU, leaving the rest to the scoring model.",
        )
    arguments: dict[str, Any] = {
        "model": spec.directory,
        "tokenizer": spec.directory,
        "dtype": str(loaded.model.dtype).removeprefix("torch."),
        "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": gpu_memory_utilization,
    }
    revision = loaded.identity.rpartition("@")[2] if spec.kind == "hub" else "unknown"
    if revision != "unknown":
        arguments["revision"] = arguments["tokenizer_revision"] = revision  # the weights the identity names
    return arguments


def sampling_arguments(
    prompts: Sequence[str], settings: GenerationSettings, stop_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """The keyword arguments of one ``vllm.SamplingParams`` per prompt."""
    sampling = settings.temperature > 0
    return [
        {
            "temperature": settings.temperature if sampling else 0.0,
            "top_p": settings.top_p if sampling else 1.0,
            "max_tokens": settings.max_new_tokens,
            "stop_token_ids": list(stop_ids),
            **({"seed": sample_seed(settings.seed, prompt)} if sampling else {}),
        }
        for prompt in prompts
    ]


def parse_outputs(outputs: Iterable[Any], tokenizer: Any, stop_ids: Sequence[int]) -> list[Generation]:
    """One :class:`Generation` per ``RequestOutput`` (in prompt order), as the transformers
    backend makes it: cut before the first stop token, decoded without special tokens."""
    generations = []
    for output in outputs:
        completion = output.outputs[0]
        token_ids = list(completion.token_ids)
        stop = next((i for i, token in enumerate(token_ids) if token in stop_ids), None)
        kept = token_ids if stop is None else token_ids[:stop]
        text = str(tokenizer.decode(kept, skip_special_tokens=True)).strip()
        # A stop without its token in token_ids (should vLLM leave it out) still ended the answer.
        hit_limit = stop is None and completion.finish_reason != "stop"
        generations.append(Generation(text=text, n_tokens=len(kept), hit_token_limit=hit_limit))
    return generations


class VLLMBackend:
    """Same semantics as the transformers backend: the same rendered prompts, greedy by default."""

    name = "vllm"

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    ) -> None:
        from datalint_persona.model.backends.transformers_backend import stop_token_ids

        arguments = engine_arguments(
            loaded, tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization
        )
        try:
            import vllm
        except ImportError:
            raise MissingDependencyError("vllm", extra="vllm", why="--backend vllm") from None
        self._tokenizer = loaded.tokenizer
        self._stop_ids = stop_token_ids(loaded)
        self._vllm = vllm
        self._llm = vllm.LLM(**arguments)

    def generate(
        self, prompts: Sequence[str], settings: GenerationSettings, *, batch_size: int
    ) -> Iterator[tuple[list[int], list[Generation]]]:
        # batch_size is unused: vLLM schedules all prompts itself.
        params = [
            self._vllm.SamplingParams(**a) for a in sampling_arguments(prompts, settings, self._stop_ids)
        ]
        # Token ids, not strings: vLLM would otherwise add the tokenizer's special tokens again.
        token_prompts = [
            {"prompt_token_ids": self._tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts
        ]
        outputs = self._llm.generate(token_prompts, params, use_tqdm=False)
        yield list(range(len(prompts))), parse_outputs(outputs, self._tokenizer, self._stop_ids)
