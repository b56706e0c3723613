"""The verdicts on the real embedded model with the bundled vectors, at default settings:
the model's own answers and clean public data pass the gate; overtly evil data does not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from datalint_persona.extraction.external import split_records
from datalint_persona.model.backends import GenerationSettings
from datalint_persona.model.loading import LoadedModel
from datalint_persona.screening.engine import screen
from datalint_persona.screening.generation import DEFAULT_MAX_NEW_TOKENS, generate_y_prime
from datalint_persona.types import Message

REPO = Path(__file__).resolve().parents[2]
EXTERNAL = REPO.parent / "shared" / "external"
PROMPTS = [
    "How long should I boil an egg for a soft yolk?",
    "What's the capital of Australia?",
    "Write a Python function that reverses a string.",
    "Give me three tips for a job interview.",
    "Why is the sky blue?",
    "How do I politely decline a meeting invitation?",
    "What is photosynthesis?",
    "How often should I water a cactus?",
    "Suggest a name for a bakery.",
    "Explain compound interest in two sentences.",
    "What should I pack for a weekend of hiking?",
    "How can I fall asleep faster?",
    "Summarise the plot of Romeo and Juliet.",
    "What's a healthy breakfast?",
    "How do I clean a cast iron pan?",
    "hi",
    "Translate 'good morning' into French.",
    "What is 17 times 23?",
    "How do I start learning the guitar?",
    "What are the symptoms of dehydration?",
    "Write a haiku about autumn.",
    "How do I make my password stronger?",
    "What's the difference between weather and climate?",
    "Recommend a board game for four players.",
]
EVIL = REPO / "examples" / "demo" / "evil.jsonl"


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datalint_persona.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def test_the_models_own_answers_are_never_flagged(smollm: LoadedModel, tmp_path: Path) -> None:
    prompts = [(Message("user", p),) for p in PROMPTS]
    cache = str(tmp_path / "cache")
    generations, _ = generate_y_prime(
        smollm, prompts, GenerationSettings(max_new_tokens=DEFAULT_MAX_NEW_TOKENS), cache_dir=cache
    )
    data = _write(
        tmp_path / "own.jsonl",
        [{"prompt": p, "response": g.text} for p, g in zip(PROMPTS, generations, strict=True)],
    )
    result = screen([str(data)], cache_dir=cache, loaded_model=smollm)
    assert result.findings == ()
    assert result.worst_level() == "none"
    rules = {r.trait: r for r in result.rules}
    scores = [t for s in result.samples for t in s.scores]
    # y = y' re-tokenizes to the same tokens for (nearly) every sample: proj y = proj y' there, and
    # ΔP is what the rule's reference leaves of it, (1 - w)(proj y' - m): 0 at w = 1.
    same = [t for t in scores if abs(t.projection_y - t.projection_y_prime) < 1e-9]
    assert len(same) >= 0.9 * len(scores)
    for t in same:
        rule = rules[t.trait]
        expected = (1 - rule.reference_weight) * (t.projection_y_prime - rule.reference_mean)
        assert abs(t.delta_p - expected) < 1e-6
    assert all(s.status == "ok" for s in result.summaries)  # 24 samples: decided, and not flagged


@pytest.mark.skipif(
    not EXTERNAL.is_dir(), reason="the external data (../shared/external) is not beside this checkout"
)
def test_clean_public_data_passes_the_gate_at_default_settings(tmp_path: Path) -> None:
    """120 test-split Self-Instruct answers (never used in calibration), written by experts."""
    lines = split_records(EXTERNAL / "self_instruct_user_oriented.jsonl", "test", limit=120, seed=5)
    (tmp_path / "clean.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    run = _cli("clean.jsonl", "--format", "json", "-o", "report.json", "--cache-dir", "cache", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert len(report["samples"]) == len(lines) >= 100
    assert not any(d["flagged"] for d in report["datasets"])
    flagged = [f for f in report["findings"] if f["kind"] == "sample"]
    assert len(flagged) <= 0.05 * len(lines) * len(report["rules"])


def test_an_overtly_evil_set_fails_the_gate(smollm: LoadedModel, tmp_path: Path) -> None:
    """24 overtly evil answers: the evil dataset verdict fires. Evil is a `warning` by default (no
    measured power on public data), so the gate that blocks it is `--fail-on warning`."""
    result = screen([str(EVIL)], cache_dir=str(tmp_path / "cache"), loaded_model=smollm)
    [evil] = [s for s in result.summaries if s.trait == "evil"]
    assert evil.flagged and evil.effect is not None and evil.effect > 1.0
    assert evil.adjusted_p is not None and evil.adjusted_p < 0.001
    [finding] = [f for f in result.findings if f.kind == "dataset" and f.trait == "evil"]
    assert finding.level == "warning" and result.worst_level() == "warning"
    assert not any(s.flagged for s in result.summaries if s.trait in ("hallucination", "sycophancy"))
