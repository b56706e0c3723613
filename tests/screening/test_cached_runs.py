"""A re-run whose prompts, y' and projections are all cached does not load the model, and reports
exactly what a run with the model reports. Any change that could change a result (a text, a
vector, a setting, a file of the model) loads the model again."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TRAIT

from datalint_persona.errors import VectorError
from datalint_persona.model import loading
from datalint_persona.model.loading import LoadedModel, resolve_model
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.reporters.json_report import render_json
from datalint_persona.run_records import ScreenResult
from datalint_persona.screening.engine import screen
from datalint_persona.screening.model_facts import ModelFactsCache, facts_of, model_files_key
from datalint_persona.settings import ScreenOptions
from screening.test_engine import RECORDS, write_jsonl


class LoadSpy:
    """Counts the calls of the real ``load_model`` (the models it returns are real)."""

    def __init__(self) -> None:
        self.calls = 0
        self.real = loading.load_model

    def __call__(self, *args: Any, **kwargs: Any) -> LoadedModel:
        self.calls += 1
        return self.real(*args, **kwargs)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoadSpy]:
    spy = LoadSpy()
    monkeypatch.setattr(loading, "load_model", spy)
    yield spy


@pytest.fixture
def model_copy(tiny_llama_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-llama"
    shutil.copytree(tiny_llama_dir, folder)
    return folder


def _options(model: Path, vectors: Path, cache: Path, **values: Any) -> ScreenOptions:
    return ScreenOptions(
        **{
            "model": str(model),
            "vectors": str(vectors),
            "cache_dir": str(cache),
            "device": "cpu",
            "dtype": "float32",
            **values,
        }
    )


def _report(result: ScreenResult) -> str:
    """The JSON report without its two timestamps."""
    return render_json(dataclasses.replace(result, started_at="", finished_at=""))


@pytest.fixture
def first_run(
    model_copy: Path, vectors_dir: Path, tmp_path: Path
) -> tuple[ScreenResult, ScreenOptions, Path]:
    data = write_jsonl(tmp_path / "train.jsonl", RECORDS)
    options = _options(model_copy, vectors_dir, tmp_path / "cache", batch_size=4)
    return screen([str(data)], options), options, data


def test_a_fully_cached_rerun_loads_no_model_and_reports_the_same(
    first_run: tuple[ScreenResult, ScreenOptions, Path], loads: LoadSpy
) -> None:
    first, options, data = first_run
    assert first.cache_stats["model_loaded"] == 1 and first.cache_stats["misses"] == len(RECORDS)
    cached = screen([str(data)], options)
    assert loads.calls == 0
    assert cached.cache_stats["model_loaded"] == 0
    assert _report(cached) == _report(first)
    # The counts are those of a run with the model that finds everything cached.
    with_model = screen([str(data)], options, loaded_model=loading.load_model(resolve_model(options.model)))
    assert _report(with_model) == _report(first)
    assert cached.cache_stats == {**with_model.cache_stats, "model_loaded": 0}
    assert cached.cache_stats["hits"] == len(RECORDS) and cached.cache_stats["misses"] == 0
    assert cached.cache_stats["pairs_forwarded"] == 0
    assert cached.cache_stats["projections_reused"] == 2 * len(RECORDS)


def _changed_text(
    data: Path, vectors: Path, options: ScreenOptions, tmp_path: Path
) -> tuple[Path, ScreenOptions]:
    records = json.loads(json.dumps(RECORDS))
    records[2]["response"] = "Forty-two."
    return write_jsonl(tmp_path / "changed.jsonl", records), options


def _changed_setting(
    data: Path, vectors: Path, options: ScreenOptions, tmp_path: Path
) -> tuple[Path, ScreenOptions]:
    return data, dataclasses.replace(options, max_new_tokens=5)


def _changed_vector(
    data: Path, vectors: Path, options: ScreenOptions, tmp_path: Path
) -> tuple[Path, ScreenOptions]:
    vector = PersonaVector.load(vectors / f"{TRAIT}.safetensors")
    folder = tmp_path / "other-vectors"
    folder.mkdir()
    dataclasses.replace(vector, vectors=-vector.vectors).save(folder / TRAIT)
    return data, dataclasses.replace(options, vectors=str(folder))


def _changed_model_file(
    data: Path, vectors: Path, options: ScreenOptions, tmp_path: Path
) -> tuple[Path, ScreenOptions]:
    config_file = Path(options.model) / "generation_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "repetition_penalty": 5.0}))
    return data, options


@pytest.mark.parametrize("change", [_changed_text, _changed_setting, _changed_vector, _changed_model_file])
def test_a_change_that_may_change_results_loads_the_model(
    first_run: tuple[ScreenResult, ScreenOptions, Path],
    vectors_dir: Path,
    tmp_path: Path,
    loads: LoadSpy,
    change: Any,
) -> None:
    first, options, data = first_run
    data, options = change(data, vectors_dir, options, tmp_path)
    changed = screen([str(data)], options)
    assert loads.calls == 1
    assert changed.cache_stats["model_loaded"] == 1
    assert changed.cache_stats["pairs_forwarded"] + changed.cache_stats["y_prime_from_generation"] > 0
    # ... and the next run with the same change needs no model again.
    assert _report(screen([str(data)], options)) == _report(changed)
    assert loads.calls == 1


def test_changed_weights_load_the_model_and_meet_the_vectors_check(
    first_run: tuple[ScreenResult, ScreenOptions, Path], loads: LoadSpy
) -> None:
    _, options, data = first_run
    from safetensors.torch import load_file, save_file

    weights = Path(options.model) / "model.safetensors"
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 0.01
    save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(VectorError, match="built for model"):
        screen([str(data)], options)
    assert loads.calls == 1


def test_wrong_cached_facts_start_the_run_again_with_the_model(
    first_run: tuple[ScreenResult, ScreenOptions, Path], loads: LoadSpy
) -> None:
    first, options, data = first_run
    spec = resolve_model(options.model)
    key = model_files_key(spec, device="cpu", dtype="float32")
    assert key is not None
    cache = ModelFactsCache(options.cache_dir)
    right = cache.get(key)
    assert right is not None and right == facts_of(loading.load_model(spec))
    cache.put(key, dataclasses.replace(right, cache_scope="something else"))
    cache.close()
    loads.calls = 0
    again = screen([str(data)], options)
    assert loads.calls == 1 and _report(again) == _report(first)
    cache = ModelFactsCache(options.cache_dir)
    assert cache.get(key) == right  # the load put the right facts back
    cache.close()


def test_a_damaged_model_entry_is_dropped_with_a_warning(
    first_run: tuple[ScreenResult, ScreenOptions, Path], loads: LoadSpy
) -> None:
    import sqlite3

    first, options, data = first_run
    connection = sqlite3.connect(Path(options.cache_dir or "") / "models.sqlite3")
    with connection:
        connection.execute("UPDATE models SET facts = replace(facts, 'Llama', 'Gpt')")
    connection.close()
    again = screen([str(data)], options)
    assert loads.calls == 1
    assert any("model entry failed its checksum" in w for w in again.warnings)
    assert _report(dataclasses.replace(again, warnings=first.warnings)) == _report(first)


def test_the_files_key_follows_the_files_device_and_dtype(model_copy: Path, tmp_path: Path) -> None:
    spec = resolve_model(str(model_copy))
    key = model_files_key(spec, device="cpu", dtype="float32")
    moved = tmp_path / "elsewhere"
    shutil.copytree(model_copy, moved)
    assert model_files_key(resolve_model(str(moved)), device="cpu", dtype="float32") == key  # contents only
    assert model_files_key(spec, device="meta", dtype="float32") != key
    assert model_files_key(spec, device="cpu", dtype="bfloat16") != key
    (model_copy / "tokenizer_config.json").write_text("{}")
    assert model_files_key(spec, device="cpu", dtype="float32") != key
    assert model_files_key(resolve_model("org/model"), device="cpu", dtype="float32") is None


def test_a_cached_run_imports_neither_torch_nor_transformers(
    first_run: tuple[ScreenResult, ScreenOptions, Path], tmp_path: Path
) -> None:
    _, options, data = first_run
    script = (
        "import sys, dataclasses\n"
        "from datalint_persona.screening.engine import screen\n"
        "from datalint_persona.settings import ScreenOptions\n"
        "from datalint_persona.reporters.json_report import render_json\n"
        f"options = ScreenOptions(model={options.model!r}, vectors={options.vectors!r}, "
        f"cache_dir={options.cache_dir!r}, device='cpu', dtype='float32', batch_size=4)\n"
        f"result = screen([{str(data)!r}], options)\n"
        "render_json(result)\n"
        "print(result.cache_stats['model_loaded'], 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    output = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert output.stdout.split() == ["0", "False", "False"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux GPU device files")
def test_auto_is_the_cpu_without_a_gpu_device_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    monkeypatch.setattr(loading, "_GPU_DEVICE_FILES", (str(tmp_path / "nvidiactl"),))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # must not be asked
    assert loading.resolve_device("auto") == "cpu"
    (tmp_path / "nvidiactl").touch()
    assert loading.resolve_device("auto") == "cuda"  # a driver's file: torch is asked
