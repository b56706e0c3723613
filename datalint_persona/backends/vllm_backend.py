"""y' generation with vLLM: one ``generate`` call over all prompts (continuous batching).

vLLM is an optional extra (``pip install 'persona-lint[vllm]'``) and is imported only here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from datalint_persona.backends.base import GenerationSettings
from datalint_persona.errors import MissingDependencyError
from datalint_persona.models import LoadedModel
from datalint_persona.types import Generation


class VLLMBackend:
    """Same semantics as the transformers backend: the same rendered prompts, greedy by default."""

    name = "vllm"

    def __init__(self, loaded: LoadedModel, *, tensor_parallel_size: int = 1) -> None:
        try:
            import vllm
        except ImportError:
            raise MissingDependencyError("vllm", extra="vllm", why="--backend vllm") from None
        spec = loaded.spec
        self._tokenizer = loaded.tokenizer
        model: str = spec.directory
        kwargs: dict[str, Any] = {}
        if spec.gguf_file is not None:
            # vLLM reads GGUF weights from the file and the tokenizer from the same folder.
            model = str(Path(spec.directory) / spec.gguf_file)
            kwargs["tokenizer"] = spec.directory
        self._vllm = vllm
        self._llm = vllm.LLM(model=model, tensor_parallel_size=tensor_parallel_size, **kwargs)

    def generate(
        self, prompts: Sequence[str], settings: GenerationSettings, *, batch_size: int
    ) -> Iterator[tuple[list[int], list[Generation]]]:
        # batch_size is unused: vLLM schedules all prompts itself.
        params = self._vllm.SamplingParams(
            temperature=settings.temperature,
            top_p=settings.top_p,
            max_tokens=settings.max_new_tokens,
            seed=settings.seed,
        )
        # Token ids, not strings: vLLM would otherwise add the tokenizer's special tokens again.
        token_prompts = [
            {"prompt_token_ids": self._tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts
        ]
        outputs = self._llm.generate(token_prompts, params, use_tqdm=False)
        generations = [
            Generation(
                text=out.outputs[0].text.strip(),
                n_tokens=len(out.outputs[0].token_ids),
                hit_token_limit=out.outputs[0].finish_reason == "length",
            )
            for out in outputs
        ]
        yield list(range(len(prompts))), generations
