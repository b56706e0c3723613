"""The caches' keys hold what changes y' or activations beyond the weights' identity: the dtype,
the device, the tokenizer and generation config of a local model, and the weights of a hub model
whose commit is unknown. Each changed case misses the cache and gets freshly computed results."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from datalint_persona.model.backends import GenerationSettings
from datalint_persona.model.loading import LoadedModel, ModelSpec, load_model, resolve_model
from datalint_persona.screening.cache_identity import cache_identity
from datalint_persona.screening.generation import generate_y_prime
from screening.test_generation import PROMPTS

SETTINGS = GenerationSettings(max_new_tokens=6)


def _generate(loaded: LoadedModel, cache: Path) -> tuple[list[str], int]:
    """The y' texts and the number of cache hits."""
    generations, used = generate_y_prime(loaded, PROMPTS, SETTINGS, cache_dir=str(cache), batch_size=4)
    return [g.text for g in generations], used.stats.hits


@pytest.fixture
def model_copy(tiny_llama_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-llama"
    shutil.copytree(tiny_llama_dir, folder)
    return folder


def _load(folder: Path, dtype: str = "float32") -> LoadedModel:
    return load_model(resolve_model(str(folder)), device="cpu", dtype=dtype)


def test_another_dtype_is_another_key(tiny_llama: LoadedModel, tiny_llama_dir: Path, tmp_path: Path) -> None:
    _, hits = _generate(tiny_llama, tmp_path)
    assert hits == 0
    double = _load(tiny_llama_dir, "float64")
    assert double.identity == tiny_llama.identity  # the same weight files
    texts, hits = _generate(double, tmp_path)
    assert hits == 0
    assert texts == _generate(double, tmp_path / "fresh")[0]
    assert _generate(tiny_llama, tmp_path)[1] == len(PROMPTS)  # the float32 entries are still there


def test_another_device_is_another_key(tiny_llama: LoadedModel) -> None:
    elsewhere = dataclasses.replace(tiny_llama, model=copy.deepcopy(tiny_llama.model).to("meta"))
    assert cache_identity(elsewhere) != cache_identity(tiny_llama)
    assert cache_identity(elsewhere).split("|")[1:3] == ["meta", "torch.float32"]


def test_a_changed_generation_config_file_is_another_key(model_copy: Path, tmp_path: Path) -> None:
    before, _ = _generate(_load(model_copy), tmp_path / "cache")
    config_file = model_copy / "generation_config.json"
    config = json.loads(config_file.read_text())
    config.update({"repetition_penalty": 5.0, "no_repeat_ngram_size": 1})
    config_file.write_text(json.dumps(config))
    changed = _load(model_copy)
    texts, hits = _generate(changed, tmp_path / "cache")
    assert hits == 0
    assert texts == _generate(changed, tmp_path / "fresh")[0] != before


def test_a_changed_tokenizer_file_is_another_key(model_copy: Path, tmp_path: Path) -> None:
    original = _load(model_copy)
    before, _ = _generate(original, tmp_path / "cache")
    tokenizer_file = model_copy / "tokenizer.json"
    document = json.loads(tokenizer_file.read_text())
    document["model"]["merges"] = document["model"]["merges"][: len(document["model"]["merges"]) // 2]
    tokenizer_file.write_text(json.dumps(document))
    changed = _load(model_copy)
    prompt = "How do I bake bread?"
    assert changed.tokenizer(prompt)["input_ids"] != original.tokenizer(prompt)["input_ids"]
    texts, hits = _generate(changed, tmp_path / "cache")
    assert hits == 0
    assert texts == _generate(changed, tmp_path / "fresh")[0]


def test_a_hub_model_of_unknown_commit_is_keyed_by_its_weights(tiny_llama_dir: Path, tmp_path: Path) -> None:
    hub = ModelSpec("org/tiny", "hub", "org/tiny")
    first = dataclasses.replace(_load(tiny_llama_dir), spec=hub, identity="hf:org/tiny@unknown")
    second = dataclasses.replace(_load(tiny_llama_dir), spec=hub, identity="hf:org/tiny@unknown")
    with torch.no_grad():
        for parameter in second.model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    assert _generate(first, tmp_path)[1] == 0
    assert _generate(first, tmp_path)[1] == len(PROMPTS)  # the same weights: reused
    texts, hits = _generate(second, tmp_path)
    assert hits == 0
    assert texts == _generate(second, tmp_path / "fresh")[0]
