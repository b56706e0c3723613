"""The Python API takes the new inputs as the CLI does: a folder, and other field names, through
an explicit ScreenOptions and through keyword overrides over the discovered config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from datalint_persona.errors import InputError
from datalint_persona.screening.engine import screen
from screening.test_engine import _options


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def test_screen_a_folder_with_renamed_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "data" / "b" / "qa.jsonl", [{"question": "What is 12 + 30?", "answer": "42"}])
    write_jsonl(tmp_path / "data" / "a.jsonl", [{"question": "How do I bake bread?", "answer": "Bake it."}])
    write_jsonl(tmp_path / "plain.jsonl", [{"prompt": "What is 12 + 30?", "response": "42"}])
    options = _options(tiny_llama_dir, vectors_dir, tmp_path, max_new_tokens=4)
    result = screen(["data"], options, prompt_field="question", response_field="answer")
    assert result.sources == ("data/a.jsonl", "data/b/qa.jsonl")
    assert [s.sample.location for s in result.samples] == ["data/a.jsonl:1", "data/b/qa.jsonl:1"]
    # The same prompt and answer under the default field names score the same.
    plain = screen(["plain.jsonl"], options, cache_dir=None)
    [renamed] = [s for s in result.samples if s.sample.source == "data/b/qa.jsonl"]
    [default] = list(plain.samples)
    assert renamed.sample.content_hash == default.sample.content_hash
    assert default.scores
    for score in default.scores:
        assert renamed.for_trait(score.trait).delta_p == pytest.approx(score.delta_p, abs=1e-5)
    # Keyword overrides without options go through the settings as the CLI's do.
    with pytest.raises(
        InputError, match=r"^plain\.jsonl:1: the field 'question' \(--prompt-field\) is missing"
    ):
        screen(
            ["plain.jsonl"],
            model=str(tiny_llama_dir),
            vectors=str(vectors_dir),
            device="cpu",
            prompt_field="question",
        )
