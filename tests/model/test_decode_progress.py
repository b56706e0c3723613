"""Progress inside a generate() batch: the step counter leaves the tokens alone, advances step by
step, the first cut y' is reported at once, and the display draws no style under NO_COLOR."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Sequence

import numpy as np
import pytest

from datalint_persona.cli.common import stderr_console
from datalint_persona.cli.progress import ProgressDisplay
from datalint_persona.model.backends import GenerationSettings, make_backend
from datalint_persona.model.backends.decode_progress import DECODE_STAGE
from datalint_persona.model.backends.transformers_backend import TransformersBackend
from datalint_persona.model.chat import render_prompt
from datalint_persona.model.loading import LoadedModel
from datalint_persona.screening.answer_cache import GenerationCache
from datalint_persona.screening.generation import CUT_STAGE, generate_with_cache
from datalint_persona.types import Direction, Generation, Message

QUESTIONS = ["Hi", "How do I bake bread? Tell me every step.", "What is 12 + 30?", "Code?", "Say hi."]
SGR = re.compile(r"\x1b\[[0-9;]*m")  # a colour or style escape


def _prompts(loaded: LoadedModel) -> list[str]:
    return [render_prompt(loaded.tokenizer, (Message("user", q),)) for q in QUESTIONS]


def _directions(loaded: LoadedModel) -> list[Direction]:
    rng = np.random.default_rng(0)
    raw = rng.standard_normal(loaded.hidden_size)
    return [Direction("t", 1, raw / np.linalg.norm(raw))]


def _generate(
    backend: TransformersBackend, prompts: Sequence[str], settings: GenerationSettings
) -> list[Generation]:
    out: dict[int, Generation] = {}
    for indices, generations in backend.generate(prompts, settings, batch_size=2):
        out.update(zip(indices, generations, strict=True))
    return [out[i] for i in range(len(prompts))]


@pytest.mark.parametrize("temperature", [0.0, 0.8])
@pytest.mark.parametrize("record", [False, True])
def test_the_progress_hook_leaves_the_generated_tokens_unchanged(
    any_tiny: LoadedModel, temperature: float, record: bool
) -> None:
    settings = GenerationSettings(max_new_tokens=7, temperature=temperature, seed=3)
    directions = _directions(any_tiny) if record else []
    prompts = _prompts(any_tiny)
    events: list[tuple[str, int, int]] = []
    plain = _generate(TransformersBackend(any_tiny, record_directions=directions), prompts, settings)
    watched_backend = TransformersBackend(
        any_tiny, record_directions=directions, progress=lambda *event: events.append(event)
    )
    watched = _generate(watched_backend, prompts, settings)
    assert watched == plain  # text, n_tokens, hit_token_limit
    assert [g.recorded for g in watched] == [g.recorded for g in plain]
    assert events, "the hook never reported"


def test_the_counter_advances_one_step_at_a_time_from_zero_in_every_batch(tiny_llama: LoadedModel) -> None:
    settings = GenerationSettings(max_new_tokens=5)
    events: list[tuple[str, int, int]] = []
    backend = make_backend("transformers", tiny_llama, progress=lambda *event: events.append(event))
    batches: list[list[int]] = []
    longest: list[int] = []
    for _, generations in backend.generate(_prompts(tiny_llama), settings, batch_size=2):
        steps = [done for stage, done, total in events if stage == DECODE_STAGE and total == 5]
        assert len(steps) == len(events)  # only decoding steps, all against the y' budget
        batches.append(steps)
        longest.append(max(g.n_tokens for g in generations))
        events.clear()
    assert len(batches) == 3  # 5 prompts, 2 a batch
    for steps, n_tokens in zip(batches, longest, strict=True):
        assert steps[0] == 0  # reported as soon as the batch starts
        assert steps == list(range(len(steps)))  # one report per step, none skipped
        assert n_tokens <= steps[-1] <= 5


def test_the_first_cut_y_prime_is_reported_with_its_batch(tiny_llama: LoadedModel) -> None:
    # A random model almost never ends its turn within 2 tokens: every y' is cut.
    settings = GenerationSettings(max_new_tokens=2)
    events: list[tuple[str, int, int]] = []
    backend = TransformersBackend(tiny_llama)
    generations = generate_with_cache(
        backend,
        GenerationCache(None),
        "m",
        _prompts(tiny_llama),
        settings,
        batch_size=2,
        progress=lambda *event: events.append(event),
    )
    cut = [g.hit_token_limit for g in generations]
    assert any(cut)
    reports = [(stage, done, total) for stage, done, total in events if stage in ("generate", CUT_STAGE)]
    first_cut = next(i for i, event in enumerate(reports) if event[0] == CUT_STAGE)
    # Right after the first generate report of a batch that held a cut y', not at the end.
    assert reports[first_cut - 1][0] == "generate"
    assert reports[first_cut][2] == reports[first_cut - 1][1]  # of the y' generated so far
    assert reports[-1] == (CUT_STAGE, sum(cut), len(generations))


def _draw(monkeypatch: pytest.MonkeyPatch, no_color: str) -> str:
    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal, as the display sees one
    monkeypatch.setenv("NO_COLOR", no_color)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with ProgressDisplay(stderr_console()) as display:
        display("load-model", 0, 1)
        display("generate", 2, 5)
        display(DECODE_STAGE, 40, 96)
        display(CUT_STAGE, 1, 2)
        display(CUT_STAGE, 2, 4)
        display.progress.refresh()
    drawn = sys.stderr.getvalue()
    assert "Generating y'" in drawn and "tokens of this batch" in drawn and "40/96" in drawn
    assert drawn.count("--max-new-tokens") == 1  # the warning comes once
    return drawn


def test_no_color_draws_the_progress_without_any_style(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SGR.search(_draw(monkeypatch, ""))  # styled when NO_COLOR is unset or empty
    assert not SGR.search(_draw(monkeypatch, "1"))


def test_a_new_batch_restarts_its_token_count(monkeypatch: pytest.MonkeyPatch) -> None:
    display = ProgressDisplay(stderr_console())
    display(DECODE_STAGE, 90, 96)
    display(DECODE_STAGE, 3, 96)
    (task,) = display.progress.tasks
    assert (task.completed, task.total) == (3, 96)
    display("generate", 5, 5)  # generation is over: the batch bar goes
    assert not task.visible
