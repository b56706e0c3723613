"""The vLLM backend without vLLM (it can't be installed here): the arguments it builds, and the
parsing of results shaped like vLLM's documented ``RequestOutput`` / ``CompletionOutput``.

What is not run: vLLM itself (loading, scheduling, its sampler). The stand-ins below only carry
the fields vLLM documents; the token ids they hold are the tiny model's own greedy tokens.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import load_tiny
from screening.test_generation import SETTINGS, _greedy_by_hand, _rendered, _run

from datalint_persona.errors import ConfigError
from datalint_persona.model.backends import GenerationSettings, make_backend, sample_seed
from datalint_persona.model.backends.transformers_backend import TransformersBackend, stop_token_ids
from datalint_persona.model.backends.vllm_backend import engine_arguments, parse_outputs, sampling_arguments
from datalint_persona.model.loading import LoadedModel, ModelSpec


@dataclass
class CompletionOutput:
    """vLLM's ``vllm.outputs.CompletionOutput`` fields."""

    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None = None
    logprobs: None = None
    finish_reason: str | None = None  # "stop" (a stop token, EOS included) or "length"
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    """vLLM's ``vllm.outputs.RequestOutput`` fields."""

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: None
    outputs: list[CompletionOutput]
    finished: bool = True
    metrics: Any = None


def _vllm_like(loaded: LoadedModel, prompts: list[str], max_new: int) -> list[RequestOutput]:
    """What vLLM returns for greedy decoding: the generated ids, ending with the stop token when it
    stopped on one (vLLM keeps it in ``token_ids``; the text leaves it out)."""
    stop_ids = set(stop_token_ids(loaded))
    outputs = []
    for number, prompt in enumerate(prompts):
        tokens = _greedy_by_hand(loaded, prompt, max_new, stop_ids)
        stopped = tokens[-1] in stop_ids
        ids = loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        text = loaded.tokenizer.decode(tokens[:-1] if stopped else tokens)
        completion = CompletionOutput(0, text, tokens, finish_reason="stop" if stopped else "length")
        outputs.append(RequestOutput(str(number), None, ids, None, [completion]))
    return outputs


def test_parsed_outputs_equal_the_transformers_backend_and_do_not_count_eos(tiny_llama_dir: Path) -> None:
    loaded = load_tiny(tiny_llama_dir)  # a private copy: its generation config is changed below
    prompts = _rendered(loaded)
    # Declare the token prompt 0 generates at step 2 an end-of-sequence token, so some y' stop on it.
    stop_token = _greedy_by_hand(loaded, prompts[0], 5, set())[2]
    loaded.model.generation_config.eos_token_id = [2, stop_token]
    outputs = _vllm_like(loaded, prompts, SETTINGS.max_new_tokens)
    assert outputs[0].outputs[0].finish_reason == "stop" and outputs[0].outputs[0].token_ids[-1] == stop_token
    parsed = parse_outputs(outputs, loaded.tokenizer, stop_token_ids(loaded))
    assert parsed == _run(TransformersBackend(loaded), prompts, SETTINGS, batch_size=8)
    for output, generation in zip(outputs, parsed, strict=True):
        ids = output.outputs[0].token_ids
        stopped = output.outputs[0].finish_reason == "stop"
        assert generation.n_tokens == len(ids) - stopped  # the stop token is not counted
        assert generation.hit_token_limit == (not stopped)
    assert parsed[0].n_tokens == 2
    # Had vLLM left the stop token out of token_ids, the same y' comes out.
    without = dataclasses.replace(
        outputs[0],
        outputs=[dataclasses.replace(outputs[0].outputs[0], token_ids=outputs[0].outputs[0].token_ids[:-1])],
    )
    assert parse_outputs([without], loaded.tokenizer, stop_token_ids(loaded)) == parsed[:1]


def test_engine_arguments_match_the_scoring_model(tiny_llama: LoadedModel) -> None:
    arguments = engine_arguments(tiny_llama, tensor_parallel_size=2, gpu_memory_utilization=0.3)
    assert arguments == {
        "model": tiny_llama.spec.directory,
        "tokenizer": tiny_llama.spec.directory,
        "dtype": "float32",  # what the transformers backend runs, not vLLM's "auto" (fp16)
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.3,
    }
    hub = dataclasses.replace(tiny_llama, spec=ModelSpec("org/m", "hub", "org/m"), identity="hf:org/m@abc123")
    assert (
        engine_arguments(hub)["revision"] == "abc123"
        and engine_arguments(hub)["gpu_memory_utilization"] == 0.5
    )
    with pytest.raises(ConfigError, match="in \\(0, 1\\]"):
        engine_arguments(tiny_llama, gpu_memory_utilization=1.5)


def test_gguf_models_are_refused_with_the_fix(tiny_llama: LoadedModel) -> None:
    gguf = dataclasses.replace(tiny_llama, spec=ModelSpec("m.gguf", "gguf", "/models", "m.gguf"))
    with pytest.raises(ConfigError, match="GGUF model") as caught:
        make_backend("vllm", gguf)  # refused before vLLM is imported
    assert "--backend transformers" in str(caught.value)


def test_sampling_arguments_stop_on_eos_and_seed_each_prompt() -> None:
    greedy = sampling_arguments(["a", "b"], GenerationSettings(max_new_tokens=7), [2, 5])
    assert greedy == [{"temperature": 0.0, "top_p": 1.0, "max_tokens": 7, "stop_token_ids": [2, 5]}] * 2
    sampled = sampling_arguments(["a", "b"], GenerationSettings(7, 0.8, 0.9, seed=3), [2])
    assert [s["seed"] for s in sampled] == [sample_seed(3, "a"), sample_seed(3, "b")]
    assert sampled[0]["seed"] != sampled[1]["seed"] and sampled[0]["temperature"] == 0.8


@dataclass
class _StandInVLLM:
    """A module object with vLLM's two names, recording what the backend passes."""

    llm_arguments: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[list[Any], list[Any]]] = field(default_factory=list)
    replies: list[RequestOutput] = field(default_factory=list)

    def module(self) -> types.ModuleType:
        module = types.ModuleType("vllm")
        stand_in = self

        class LLM:
            def __init__(self, **arguments: Any) -> None:
                stand_in.llm_arguments = arguments

            def generate(self, prompts: list[Any], params: list[Any], use_tqdm: bool) -> list[RequestOutput]:
                stand_in.calls.append((prompts, params))
                return stand_in.replies

        module.LLM = LLM  # type: ignore[attr-defined]
        module.SamplingParams = lambda **kwargs: kwargs  # type: ignore[attr-defined]
        return module


def test_the_backend_passes_token_ids_and_parses_replies(
    tiny_llama: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = _rendered(tiny_llama)
    stand_in = _StandInVLLM(replies=_vllm_like(tiny_llama, prompts, SETTINGS.max_new_tokens))
    monkeypatch.setitem(sys.modules, "vllm", stand_in.module())
    backend = make_backend("vllm", tiny_llama, gpu_memory_utilization=0.4)
    assert stand_in.llm_arguments["gpu_memory_utilization"] == 0.4
    assert stand_in.llm_arguments["dtype"] == "float32"
    [(indices, generations)] = list(backend.generate(prompts, SETTINGS, batch_size=2))
    [(sent, params)] = stand_in.calls
    assert sent == [
        {"prompt_token_ids": tiny_llama.tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts
    ]
    assert all(p["stop_token_ids"] == [2] and p["max_tokens"] == SETTINGS.max_new_tokens for p in params)
    assert indices == list(range(len(prompts)))
    assert generations == _run(TransformersBackend(tiny_llama), prompts, SETTINGS, batch_size=8)
