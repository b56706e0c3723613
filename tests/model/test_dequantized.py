"""The dequantized copy of a model (model/dequantized.py): read back weight for weight, with the
same logits, tokenizer and cache identity; written whole or not at all; a damaged copy is removed.

These run on tiny random models; tests/slow/test_dequantized_gguf.py runs the embedded GGUF file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from datalint_persona.model.dequantized import (
    WEIGHTS_NAME,
    dequantized_folder,
    dequantized_key,
    load_dequantized,
    save_dequantized,
)
from datalint_persona.model.loading import LoadedModel
from datalint_persona.screening.cache_identity import cache_identity, tokenizer_fingerprint

TEXT = "Write add. def add(a, b): return a + b"


def _logits(model: object, tokenizer: object) -> torch.Tensor:
    ids = tokenizer(TEXT, return_tensors="pt")  # type: ignore[operator]
    with torch.inference_mode():
        return model(**ids).logits  # type: ignore[operator, no-any-return]


@pytest.mark.parametrize("name", ["tiny_llama", "tiny_gpt2"])
def test_the_copy_is_the_model_weight_for_weight(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    loaded: LoadedModel = request.getfixturevalue(name)
    folder = tmp_path / "copy"
    assert save_dequantized(folder, loaded.model, loaded.tokenizer)
    result = load_dequantized(folder, dtype="float32", device="cpu")
    assert result is not None
    model, tokenizer = result
    original = loaded.model.state_dict()
    copy = model.state_dict()
    assert original.keys() == copy.keys()
    assert all(torch.equal(original[k], copy[k]) for k in original)
    assert torch.equal(_logits(loaded.model, loaded.tokenizer), _logits(model, tokenizer))
    assert tokenizer_fingerprint(tokenizer) == tokenizer_fingerprint(loaded.tokenizer)
    # The same identity as the original: y' and projections cached by one load serve the other.
    again = dataclasses.replace(loaded, model=model, tokenizer=tokenizer)
    assert cache_identity(again) == cache_identity(loaded)


def test_a_tied_head_is_written_once_and_tied_again(tiny_llama: LoadedModel, tmp_path: Path) -> None:
    from safetensors import safe_open

    folder = tmp_path / "copy"
    save_dequantized(folder, tiny_llama.model, tiny_llama.tokenizer)
    with safe_open(str(folder / WEIGHTS_NAME), framework="pt") as handle:
        assert "lm_head.weight" not in set(handle.keys())
    result = load_dequantized(folder, dtype="float32", device="cpu")
    assert result is not None
    model = result[0]
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_bfloat16_is_read_from_the_float32_copy(tiny_llama: LoadedModel, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    save_dequantized(folder, tiny_llama.model, tiny_llama.tokenizer)
    result = load_dequantized(folder, dtype="bfloat16", device="cpu")
    assert result is not None
    weights = result[0].state_dict()
    assert all(t.dtype == torch.bfloat16 for t in weights.values() if t.is_floating_point())
    for name, tensor in tiny_llama.model.state_dict().items():
        assert torch.equal(weights[name], tensor.to(torch.bfloat16)), name


def test_an_incomplete_or_damaged_copy_is_not_used(tiny_llama: LoadedModel, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    assert load_dequantized(folder, dtype="float32", device="cpu") is None  # none yet
    save_dequantized(folder, tiny_llama.model, tiny_llama.tokenizer)
    (folder / WEIGHTS_NAME).write_bytes(b"not safetensors")
    assert load_dequantized(folder, dtype="float32", device="cpu") is None
    assert not folder.exists()  # removed, so the next load writes it again
    assert save_dequantized(folder, tiny_llama.model, tiny_llama.tokenizer)
    assert load_dequantized(folder, dtype="float32", device="cpu") is not None


def test_an_unwritable_cache_leaves_nothing_behind(
    tiny_llama: LoadedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert not save_dequantized(blocked / "copy", tiny_llama.model, tiny_llama.tokenizer)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", disk_full)
    base = tmp_path / "cache"
    assert not save_dequantized(base / "copy", tiny_llama.model, tiny_llama.tokenizer)
    assert list(base.iterdir()) == []  # no half-written folder


def test_the_key_follows_the_file_and_the_converters(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert dequantized_key("a" * 64) != dequantized_key("b" * 64)
    before = dequantized_key("a" * 64)
    monkeypatch.setattr("datalint_persona.model.dequantized._version", lambda name: "9.9")
    assert dequantized_key("a" * 64) != before
    monkeypatch.setenv("PERSONA_LINT_HOME", str(tmp_path))
    assert dequantized_folder("a" * 64).parent == tmp_path / "dequantized"
