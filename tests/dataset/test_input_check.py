"""A screening run reads its inputs twice; any change in between (or during) stops it, also one
that keeps the number of samples, so a report's sha256 always describes what was scored."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from screening.test_engine import RECORDS, _options, write_jsonl

from datalint_persona.errors import PersonaLintError
from datalint_persona.screening.engine import screen


def _change_before_the_second_read(
    monkeypatch: pytest.MonkeyPatch, data: Path, change: Callable[[str], str]
) -> None:
    import datalint_persona.dataset.loaders as loaders

    real_iter = loaders.iter_dataset

    def changed_after_the_scan(*args: Any, **kwargs: Any) -> Any:
        data.write_text(change(data.read_text(encoding="utf-8")), encoding="utf-8")
        return real_iter(*args, **kwargs)

    monkeypatch.setattr(loaders, "iter_dataset", changed_after_the_scan)


def test_an_edit_that_keeps_the_sample_count_stops_the_run(
    tiny_llama_dir: Path, vectors_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", RECORDS)
    edited = json.dumps({"prompt": "What is 12 + 30?", "response": "I will destroy everyone."})

    def swap_one_record(text: str) -> str:
        lines = text.splitlines(keepends=True)
        lines[2] = edited + "\n"
        return "".join(lines)

    _change_before_the_second_read(monkeypatch, data, swap_one_record)
    with pytest.raises(
        PersonaLintError, match="train.jsonl holds other samples than on the first read"
    ) as caught:
        screen([str(data)], _options(tiny_llama_dir, vectors_dir, tmp_path, max_new_tokens=4))
    assert "screen a copy of the data that nothing writes to" in str(caught.value)


def test_changed_bytes_that_keep_every_sample_stop_the_run(
    tiny_llama_dir: Path, vectors_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blank line appended: the same samples, but the sha256 the report would record is stale."""
    data = write_jsonl(tmp_path / "train.jsonl", RECORDS)
    _change_before_the_second_read(monkeypatch, data, lambda text: text + "\n")
    with pytest.raises(PersonaLintError, match=r"train.jsonl no longer has the sha256 [0-9a-f]{64}"):
        screen([str(data)], _options(tiny_llama_dir, vectors_dir, tmp_path, max_new_tokens=4))


def test_an_unchanged_input_passes_and_reports_its_sha256(
    tiny_llama_dir: Path, vectors_dir: Path, tmp_path: Path
) -> None:
    import hashlib

    data = write_jsonl(tmp_path / "train.jsonl", RECORDS)
    result = screen([str(data)], _options(tiny_llama_dir, vectors_dir, tmp_path, max_new_tokens=4))
    assert [entry.sha256 for entry in result.inputs] == [hashlib.sha256(data.read_bytes()).hexdigest()]
    assert len(list(result.samples)) == len(RECORDS)
