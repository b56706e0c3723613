"""The embedded GGUF file: the first load fills the dequantized copy in the user cache, and a load
from that copy is the same model (weights, logits, tokenizer, the facts and cache identity that
key every cache), in float32 and in bfloat16."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datalint_persona.model.dequantized import dequantized_folder
from datalint_persona.model.loading import LoadedModel, load_model, resolve_model
from datalint_persona.screening.cache_identity import cache_identity
from datalint_persona.screening.model_facts import facts_of

TEXT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def _logits(loaded: LoadedModel) -> torch.Tensor:
    ids = loaded.tokenizer(TEXT, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        return loaded.model(**ids).logits


def test_a_load_from_the_copy_is_the_gguf_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_LINT_HOME", str(tmp_path))
    spec = resolve_model("smollm2-135m-instruct")
    from_gguf = load_model(spec)  # dequantizes the file, and writes the copy
    folder = dequantized_folder(from_gguf.identity.removeprefix("sha256:"))
    assert (folder / "model.safetensors").is_file()
    from_copy = load_model(spec)
    assert getattr(from_copy.model.config, "quantization_config", None) is None  # read from the copy
    first, second = from_gguf.model.state_dict(), from_copy.model.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert torch.equal(_logits(from_gguf), _logits(from_copy))
    assert facts_of(from_copy) == facts_of(from_gguf)
    assert cache_identity(from_copy) == cache_identity(from_gguf)

    # bfloat16 comes from the same copy, rounded from its float32 weights.
    half = load_model(spec, dtype="bfloat16")
    assert half.model.dtype == torch.bfloat16
    halved = half.model.state_dict()
    assert all(torch.equal(halved[name], first[name].to(torch.bfloat16)) for name in first)
    assert cache_identity(half) != cache_identity(from_gguf)
