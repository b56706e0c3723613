"""--max-samples and --max-tokens bound the work, and the run says what it skipped or truncated,
in the terminal and in the JSON report's warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from datalint_persona.cli.main import main

SHORT = "Be kind."
LONG = "Mix flour, water, salt and yeast, knead it, let it rise and bake it for forty minutes. " * 4


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()
    records = [{"prompt": f"Question {i}?", "response": LONG if i % 3 == 0 else SHORT} for i in range(10)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (tmp_path / "more.jsonl").write_text(json.dumps(records[1]) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _lint(model: Path, vectors: Path, *args: str) -> Result:
    common = ["--model", str(model), "--vectors", str(vectors), "--cache-dir", "cache", "--device", "cpu"]
    argv = [*args, *common, "--max-new-tokens", "4", "--fail-on", "never"]
    return CliRunner().invoke(main, argv, catch_exceptions=False)


def test_max_samples_bounds_the_work_and_says_so(
    workdir: Path, tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    result = _lint(
        tiny_llama_dir, vectors_dir, "train.jsonl", "more.jsonl", "--max-samples", "3", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(s["source"], s["line"]) for s in report["samples"]] == [("train.jsonl", n) for n in (1, 2, 3)]
    message = "--max-samples 3: stopped reading after train.jsonl:3; the records after it were not screened."
    assert message in report["warnings"]
    assert f"persona-lint: warning: {message}" in result.stderr
    assert "y' cache: 0 reused, 3 generated" in result.stderr  # y' was generated for 3 samples only

    terminal = _lint(tiny_llama_dir, vectors_dir, "train.jsonl", "--max-samples", "2")
    assert "stopped reading after train.jsonl:2" in " ".join(terminal.stdout.split())


def test_max_samples_that_reads_everything_warns_of_nothing(
    workdir: Path, tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    result = _lint(tiny_llama_dir, vectors_dir, "more.jsonl", "--max-samples", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    assert not [w for w in json.loads(result.stdout)["warnings"] if "max-samples" in w]


def test_max_tokens_truncation_is_counted_and_reported(
    workdir: Path, tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    lengths = []
    for line in (workdir / "train.jsonl").read_text().splitlines():
        record = json.loads(line)
        turns = [
            {"role": "user", "content": record["prompt"]},
            {"role": "assistant", "content": record["response"]},
        ]
        text = tokenizer.apply_chat_template(turns, tokenize=False)
        lengths.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    limit = 64
    assert min(lengths) < limit - 10 and max(lengths) > limit + 10  # no sample sits near the limit
    expected = [n > limit for n in lengths]

    result = _lint(tiny_llama_dir, vectors_dir, "train.jsonl", "--max-tokens", str(limit), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [s["truncated"] for s in report["samples"]] == expected
    message = f"{sum(expected)} sample(s) exceeded {limit} tokens and were truncated."
    assert message in report["warnings"]
    assert report["settings"]["max_tokens"] == limit

    terminal = _lint(tiny_llama_dir, vectors_dir, "train.jsonl", "--max-tokens", str(limit))
    assert message in " ".join(terminal.stdout.split())
