"""Timed runs of the screening benchmark that load a model or start a process: the engine end to
end (model load included), the reference's naive load, the generation ablation and the cached
re-run of the demo through the CLI. The pure counting lives in ``bench_lib``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_lib as lib

ROOT = Path(__file__).resolve().parent.parent
T0 = time.perf_counter()


def say(text: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {text}", flush=True)


class StageClock:
    """Progress callback that notes when each stage (load-model, generate, score) starts and ends."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        self.marks.setdefault(f"{stage}-start", now)
        if done >= total:
            self.marks[f"{stage}-end"] = now

    def load_seconds(self) -> float:
        """The model load inside the run (0 when the run was handed a loaded model)."""
        if "load-model-end" not in self.marks:
            return 0.0
        return self.marks["load-model-end"] - self.marks["load-model-start"]

    def generation_seconds(self) -> float:
        # The cache lookups before the load may report the generate stage already: count from the
        # later of its first report and the end of the load.
        start = max(self.marks["generate-start"], self.marks.get("load-model-end", 0.0))
        return self.marks["generate-end"] - start

    def scoring_seconds(self) -> float:
        return self.marks["score-end"] - self.marks["generate-end"]


@dataclass
class EngineRun:
    """One ``screen()`` run, timed end to end, with its stages."""

    label: str
    result: Any
    total_s: float
    load_s: float
    generation_s: float
    scoring_s: float


def engine_run(label: str, sources: Sequence[str], options: Any) -> EngineRun:
    """``screen(sources, options)`` with no model passed in: it loads the model itself, as the CLI does."""
    from datalint_persona.screening.engine import screen

    clock = StageClock()
    start = time.perf_counter()
    result = screen(list(sources), options, progress=clock)
    total = time.perf_counter() - start
    run = EngineRun(
        label, result, total, clock.load_seconds(), clock.generation_seconds(), clock.scoring_seconds()
    )
    say(
        f"engine, {label}: {total:.1f}s (load {run.load_s:.1f}s, generation {run.generation_s:.1f}s, "
        f"scoring {run.scoring_s:.1f}s; dtype {result.settings.dtype})"
    )
    return run


def naive_load(spec: Any) -> tuple[Any, float]:
    """The model loaded as a user of the reference scripts would: from the GGUF file with
    transformers' ``gguf_file=`` (dequantized on every load), float32; and the seconds it took."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datalint_persona.model.loading import LoadedModel, model_identity

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(spec.directory, gguf_file=spec.gguf_file)
    model: Any = AutoModelForCausalLM.from_pretrained(
        spec.directory, gguf_file=spec.gguf_file, dtype=torch.float32
    )
    model.eval()
    seconds = time.perf_counter() - start
    # The fingerprint is only for this container (a naive user computes none): outside the timing.
    identity = model_identity(spec)
    return LoadedModel(spec=spec, identity=identity, model=model, tokenizer=tokenizer), seconds


def prompt_lengths(tokenizer: Any, prompts: Sequence[Any]) -> list[int]:
    """Tokens of each prompt rendered in the chat template, with the assistant turn's header."""
    from datalint_persona.model.chat import render_prompt

    return [
        len(tokenizer(render_prompt(tokenizer, p), add_special_tokens=False)["input_ids"]) for p in prompts
    ]


def useful_new_tokens(tokenizer: Any, scores: Sequence[Any]) -> list[int]:
    """Tokens each y' took to generate: its text re-tokenized, plus the end-of-sequence token where
    it stopped before the limit."""
    return [
        len(tokenizer(s.y_prime, add_special_tokens=False)["input_ids"])
        + (0 if s.y_prime_hit_token_limit else 1)
        for s in scores
    ]


def generation_row(
    loaded: Any, rendered: Sequence[str], max_new: int, batch_size: int, directions: Any
) -> dict[str, Any]:
    """One generation ablation row in this process: the engine's backend over ``rendered``."""
    from datalint_persona.model.backends import GenerationSettings
    from datalint_persona.model.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(loaded, record_directions=tuple(directions))
    settings = GenerationSettings(max_new_tokens=max_new)
    start = time.perf_counter()
    generations = [
        g for _, batch in backend.generate(rendered, settings, batch_size=batch_size) for g in batch
    ]
    seconds = time.perf_counter() - start
    tokens = sum(g.n_tokens + (0 if g.hit_token_limit else 1) for g in generations)
    return {"seconds": seconds, "tokens": tokens, "texts": sorted(lib.text_hash(g.text) for g in generations)}


def generation_probe(
    rendered: Sequence[str], work: Path, max_new: int, batch_size: int, timeout: float, **extra: str
) -> dict[str, Any]:
    """One generation run in a process of its own (benchmarks/generation_probe.py), under ``timeout``;
    {"error": why} when it fails or runs out of time."""
    prompts = work / "probe-prompts.json"
    prompts.write_text(json.dumps(list(rendered)), encoding="utf-8")
    command = [
        sys.executable, str(Path(__file__).resolve().parent / "generation_probe.py"), str(prompts),
        "--batch-size", str(batch_size), "--max-new-tokens", str(max_new),
        *(item for key, value in extra.items() for item in (f"--{key.replace('_', '-')}", value)),
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, env=source_tree_env()
        )
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within the {timeout:.0f} s timeout"}
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def demo_rerun_seconds(work: Path, extra: Sequence[str] = ()) -> tuple[float, float, str]:
    """(first run s, second run s, the second's stderr line on the model) of ``persona-lint`` on the
    demo files twice with one cache folder: the second finds everything cached."""
    cache = work / "demo-cache"
    command = [
        sys.executable, "-m", "datalint_persona.cli", "examples/demo/train.jsonl", "examples/demo/evil.jsonl",
        "--cache-dir", str(cache), *extra,
    ]  # fmt: skip
    env = source_tree_env()
    start = time.perf_counter()
    first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    first_s = time.perf_counter() - start
    assert first.returncode in (0, 1), first.stderr  # 1: findings, as the demo's evil.jsonl has
    start = time.perf_counter()
    second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    second_s = time.perf_counter() - start
    assert second.returncode == first.returncode, second.stderr
    model_line = next((line for line in second.stderr.splitlines() if line.startswith("model:")), "")
    return first_s, second_s, model_line


def source_tree_env() -> dict[str, str]:
    """This process's environment, with this checkout first on PYTHONPATH, so that a child process
    imports the code benchmarked here and not another installed copy."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under ``folder``: to show a run left it untouched."""
    if not folder.exists():
        return {}
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }
