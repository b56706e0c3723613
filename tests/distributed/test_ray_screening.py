"""Screening on a local Ray cluster (two CPUs) against a single-machine run of the same data."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_close, write_mixed_records

from datalint_persona.distributed import ShardOutcome, ShardScreener, screen_dataset
from datalint_persona.reporters import render_json
from datalint_persona.screening.engine import screen
from datalint_persona.settings import ScreenOptions

pytestmark = pytest.mark.ray


def _report(result: Any) -> dict[str, Any]:
    """The JSON report without its times."""
    report = json.loads(render_json(result))
    return {k: v for k, v in report.items() if k not in ("started_at", "finished_at")}


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path, vectors_dir: Path) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("ray")
    files = [
        str(write_mixed_records(folder / "a.jsonl", 20, 0, numbered=True)),
        str(write_mixed_records(folder / "b.jsonl", 16, 3, numbered=True)),
    ]
    options = ScreenOptions(
        model=str(tiny_llama_dir),
        vectors=str(vectors_dir),
        cache_dir=str(folder / "single"),
        device="cpu",
        # float32: these tests compare numbers across batches to 1e-5 (bf16 rounding follows the batch)
        dtype="float32",
        batch_size=4,
        max_new_tokens=12,
    )
    return {"folder": folder, "files": files, "options": options, "single": _report(screen(files, options))}


def _options(data: dict[str, Any], cache: str) -> ScreenOptions:
    from dataclasses import replace

    return replace(data["options"], cache_dir=str(data["folder"] / cache))


def test_ray_report_equals_the_single_machine_report(ray_session: Any, data: dict[str, Any]) -> None:
    from click.testing import CliRunner

    from datalint_persona.cli.main import main

    options, output = _options(data, "ray"), data["folder"] / "ray.json"
    # The CLI path: `--ray` alone joins the Ray this process already runs.
    args = [
        *data["files"],
        "--model",
        options.model,
        "--vectors",
        options.vectors,
        "--device",
        "cpu",
        "--dtype",
        "float32",
    ]
    args += ["--batch-size", "4", "--max-new-tokens", "12", "--cache-dir", str(options.cache_dir)]
    args += ["--ray", "--ray-replicas", "2", "--format", "json", "-o", str(output), "-q"]
    run = CliRunner().invoke(main, args)
    errors = [f for f in data["single"]["findings"] if f["level"] == "error"]
    assert run.exit_code == (1 if errors else 0), run.output  # the exit code of a single run
    report = json.loads(output.read_text(encoding="utf-8"))
    report = {k: v for k, v in report.items() if k not in ("started_at", "finished_at")}
    assert len(report["samples"]) == 36
    assert [s["index"] for s in report["samples"]] == list(range(36))
    assert [(s["source"], s["line"]) for s in report["samples"][19:21]] == [("a.jsonl", 20), ("b.jsonl", 1)]
    assert_close(report, data["single"])

    # A re-run on the same cache generates nothing and reads every projection back.
    again = screen_dataset(data["files"], options, replicas=2, cpus_per_replica=1)
    assert again.cache_stats["misses"] == 0 and again.cache_stats["hits"] == 36
    assert again.cache_stats["pairs_forwarded"] == 0 and again.cache_stats["projections_reused"] == 72
    assert_close(_report(again), data["single"])


def _crash_once(marker: Path) -> type[ShardScreener]:
    """A screener whose process dies once, after screening shard 2 and before answering."""

    class CrashOnce(ShardScreener):
        def screen_shard(self, index: int) -> ShardOutcome:
            outcome = super().screen_shard(index)
            if index == 2 and not marker.exists():
                marker.write_text(str(os.getpid()), encoding="utf-8")
                os._exit(1)  # the worker process dies, as on a lost machine
            return outcome

    return CrashOnce


def test_a_dead_worker_is_replaced_and_the_report_is_unchanged(
    ray_session: Any, data: dict[str, Any]
) -> None:
    marker = data["folder"] / "crashed"
    result = screen_dataset(data["files"], _options(data, "crash"), replicas=2, screener=_crash_once(marker))
    assert marker.exists()  # a worker did die mid-run
    # Shard 2 of 8 ran again, and found the y' its dead worker had cached (5 samples of 36).
    assert result.cache_stats["hits"] == 5 and result.cache_stats["misses"] == 31, result.cache_stats
    assert_close(_report(result), data["single"])


def test_without_the_extra_the_cli_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, data: dict[str, Any]
) -> None:
    import sys

    from click.testing import CliRunner

    from datalint_persona.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    options = data["options"]
    result = CliRunner().invoke(
        main,
        ["screen", data["files"][0], "--ray", "--model", options.model, "--vectors", options.vectors, "-q"],
    )
    assert result.exit_code == 2, result.output
    assert "The optional package 'ray' is not installed" in result.output
    assert "pip install 'persona-lint[ray]'" in result.output


def test_shard_and_ray_do_not_combine(data: dict[str, Any]) -> None:
    from datalint_persona.errors import ConfigError

    with pytest.raises(ConfigError, match="--shard 1/2 and --ray both split the run"):
        screen_dataset(data["files"], _options(data, "unused"), shard="1/2")


def test_stdin_is_refused_before_ray_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    from datalint_persona.errors import ConfigError

    pytest.importorskip("ray")
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"prompt": "Hi", "response": "Hello"}\n'))
    with pytest.raises(ConfigError, match=r"'-' \(standard input\) can't be screened on Ray"):
        screen_dataset(["-"], ScreenOptions(device="cpu"))
    assert sys.stdin.read() != ""  # refused before standard input was read


def _no_model_here() -> type[ShardScreener]:
    """A screener that can't load the model (as on a node without the model's folder); built in
    a function so that Ray ships the class itself, not a reference to this test module."""

    class NoModelHere(ShardScreener):
        def load(self, options: ScreenOptions) -> None:
            from datalint_persona.errors import ModelError

            raise ModelError(
                "no model at /nowhere on this worker.", fix="put the model where every worker sees it."
            )

    return NoModelHere


def test_a_workers_own_error_reaches_the_caller_with_its_fix(ray_session: Any, data: dict[str, Any]) -> None:
    from datalint_persona.errors import PersonaLintError

    with pytest.raises(PersonaLintError, match="no model at /nowhere on this worker") as raised:
        screen_dataset(data["files"], _options(data, "unused"), screener=_no_model_here())
    assert raised.value.fix == "put the model where every worker sees it."


def test_an_unknown_trait_in_the_datas_own_suppression_is_refused_on_ray(
    ray_session: Any, data: dict[str, Any]
) -> None:
    from datalint_persona.errors import InputError
    from datalint_persona.paths import display_path

    marked = data["folder"] / "marked.jsonl"
    record = {
        "prompt": "Say hello.",
        "response": "Hello!",
        "persona_lint": {"ignore": ["evl"], "reason": "r"},
    }
    marked.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="unknown trait 'evl'. Did you mean 'evil'") as raised:
        screen_dataset([*data["files"], str(marked)], _options(data, "marked"))
    assert (raised.value.path, raised.value.line) == (display_path(marked), 1)  # as reports name it


def test_ray_options_without_ray_are_refused(data: dict[str, Any]) -> None:
    from click.testing import CliRunner

    from datalint_persona.cli.main import main

    result = CliRunner().invoke(main, ["screen", data["files"][0], "--ray-replicas", "4"])
    assert result.exit_code == 2
    assert "--ray-replicas is set without --ray" in result.output and "add --ray [ADDRESS]" in result.output
