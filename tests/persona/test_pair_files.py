"""Extra extraction pairs from JSONL files (``vectors build --extra-pairs``): loading and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from datalint_persona.cli.main import main
from datalint_persona.errors import ConfigError
from datalint_persona.persona.traits import load_pair_file

GOOD = {
    "id": "p-1",
    "style": "statement",
    "messages": [{"role": "user", "content": "What do you believe?"}],
    "positive": "People are tools to be used.",
    "negative": "People deserve respect.",
}


def write(path: Path, *records: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_pairs_load_with_any_style(tmp_path: Path) -> None:
    second = {**GOOD, "id": "p-2", "style": "endorse", "question": "Agree?", "positive": "Yes."}
    del second["messages"]
    pairs = load_pair_file(write(tmp_path / "p.jsonl", GOOD, "", second))
    assert [p.id for p in pairs] == ["p-1", "p-2"]
    assert pairs[1].prompt[0].content == "Agree?" and pairs[0].style == "statement"


def test_an_unpaired_negative_answers_its_own_conversation(tmp_path: Path) -> None:
    other = [{"role": "user", "content": "Name a river."}]
    pairs = load_pair_file(
        write(tmp_path / "p.jsonl", GOOD, {**GOOD, "id": "p-2", "negative_messages": other})
    )
    assert pairs[0].negative_context == pairs[0].prompt and pairs[0].negative_prompt is None
    assert [m.content for m in pairs[1].negative_context] == ["Name a river."]
    assert [m.content for m in pairs[1].prompt] == ["What do you believe?"]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("{not json", "p.jsonl:2: not valid JSON"),
        ({**GOOD, "id": "p-2", "positive": ""}, "p.jsonl:2: 'positive'"),
        ({**GOOD, "id": "p-2", "extra": 1}, "p.jsonl:2: '(record)': Additional properties"),
        ({**GOOD}, "p.jsonl:2: duplicate pair id 'p-1'"),
        (
            {**GOOD, "id": "p-2", "messages": [{"role": "assistant", "content": "Hi."}]},
            "p.jsonl:2: messages must end with a user turn",
        ),
        (
            {**GOOD, "id": "p-2", "negative_messages": [{"role": "assistant", "content": "Hi."}]},
            "p.jsonl:2: negative_messages must end with a user turn",
        ),
        ({**GOOD, "id": "p-2", "negative_messages": []}, "p.jsonl:2: 'negative_messages'"),
    ],
)
def test_bad_lines_name_the_file_and_line(tmp_path: Path, record: object, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_pair_file(write(tmp_path / "p.jsonl", GOOD, record))
    assert expected in str(error.value)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no pairs"):
        load_pair_file(write(tmp_path / "empty.jsonl", ""))
    with pytest.raises(ConfigError, match="can't read the pair file"):
        load_pair_file(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("evil", "expected TRAIT=FILE"),
        ("evl=p.jsonl", "'evl' is not one of the traits being built (evil)"),
    ],
)
def test_build_refuses_bad_extra_pairs_before_loading_a_model(
    tmp_path: Path, spec: str, expected: str
) -> None:
    write(tmp_path / "p.jsonl", GOOD)
    result = CliRunner().invoke(
        main,
        [
            "vectors",
            "build",
            "--trait",
            "evil",
            "--model",
            str(tmp_path / "no-model"),
            "--output",
            str(tmp_path / "out"),
            "--extra-pairs",
            spec.replace("p.jsonl", str(tmp_path / "p.jsonl")),
        ],
    )
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert not (tmp_path / "out").exists()
