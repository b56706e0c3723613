"""Tests for datalint_persona.dataset.loaders, .records and .paths on real files written in tmp_path."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datalint_persona.dataset.loaders import iter_dataset, iter_records, scan_dataset
from datalint_persona.dataset.records import record_to_sample
from datalint_persona.errors import ConfigError, InputError
from datalint_persona.paths import display_path, find_repo_root
from datalint_persona.types import InvalidRecord, Message, Sample

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fake git repository, so display paths are relative to tmp_path wherever pytest runs."""
    (tmp_path / ".git").mkdir()
    return tmp_path


def write_jsonl(path: Path, records: Sequence[object]) -> str:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return str(path)


def read_dataset(sources: Sequence[str] | str, **options: Any) -> tuple[list[Sample], list[InvalidRecord]]:
    """Every sample and invalid record :func:`iter_dataset` streams, apart and in order."""
    items = list(iter_dataset(sources, **options))
    samples = [item for item in items if isinstance(item, Sample)]
    return samples, [item for item in items if isinstance(item, InvalidRecord)]


def load_one(path: Path | str, **options: Any) -> list[Sample | InvalidRecord]:
    return list(iter_records(str(path), **options))


def only_samples(items: Sequence[Sample | InvalidRecord]) -> list[Sample]:
    samples = [item for item in items if isinstance(item, Sample)]
    assert len(samples) == len(items), items
    return samples


def error_of(source: Path | str, **options: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        load_one(source, **options)
    return caught.value


# --- record formats -------------------------------------------------------------------------


def test_chat_single_turn(repo: Path) -> None:
    [sample] = only_samples(load_one(write_jsonl(repo / "train.jsonl", [CHAT])))
    assert sample == Sample("train.jsonl", 1, (Message("user", "Hi"),), "Hello!")


def test_chat_multi_turn_with_system_uses_last_assistant_turn(repo: Path) -> None:
    record = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And times 3?"},
            {"role": "assistant", "content": "12", "weight": 1},
        ]
    }
    [sample] = only_samples(load_one(write_jsonl(repo / "train.jsonl", [record])))
    assert sample.prompt == (
        Message("system", "Be brief."),
        Message("user", "2+2?"),
        Message("assistant", "4"),
        Message("user", "And times 3?"),
    )
    assert sample.response == "12"


@pytest.mark.parametrize("answer_field", ["response", "completion"])
def test_prompt_response_and_completion(repo: Path, answer_field: str) -> None:
    records = [
        {"prompt": "Name a colour.", answer_field: "Blue."},
        {"system": "You are terse.", "prompt": "Name a fruit.", answer_field: "Pear."},
        {"system": "", "prompt": "Name a tree.", answer_field: "Oak."},
    ]
    samples = only_samples(load_one(write_jsonl(repo / "train.jsonl", records)))
    assert [s.prompt for s in samples] == [
        (Message("user", "Name a colour."),),
        (Message("system", "You are terse."), Message("user", "Name a fruit.")),
        (Message("user", "Name a tree."),),
    ]
    assert [s.response for s in samples] == ["Blue.", "Pear.", "Oak."]


def test_alpaca_joins_instruction_and_input(repo: Path) -> None:
    records = [
        {"instruction": "Translate to French.", "input": "cat", "output": "chat"},
        {"instruction": "Say hi.", "input": "", "output": "Hi!"},
        {"instruction": "Say bye.", "input": "  ", "output": "Bye!"},
        {"instruction": "Count to two.", "output": "1, 2"},
    ]
    samples = only_samples(load_one(write_jsonl(repo / "train.jsonl", records)))
    assert [s.prompt[0].content for s in samples] == [
        "Translate to French.\n\ncat",
        "Say hi.",
        "Say bye.",
        "Count to two.",
    ]
    assert all(len(s.prompt) == 1 and s.prompt[0].role == "user" for s in samples)
    assert [s.response for s in samples] == ["chat", "Hi!", "Bye!", "1, 2"]


def test_sharegpt_speakers_map_to_roles(repo: Path) -> None:
    records = [
        {
            "conversations": [
                {"from": "system", "value": "Be kind."},
                {"from": "human", "value": "Hello"},
                {"from": "gpt", "value": "Hi there"},
                {"from": "user", "value": "Bye"},
                {"from": "assistant", "value": "Goodbye"},
            ]
        }
    ]
    [sample] = only_samples(load_one(write_jsonl(repo / "train.jsonl", records)))
    assert sample.prompt == (
        Message("system", "Be kind."),
        Message("user", "Hello"),
        Message("assistant", "Hi there"),
        Message("user", "Bye"),
    )
    assert sample.response == "Goodbye"


def test_messages_win_over_prompt_column() -> None:
    # UltraChat rows carry both a "prompt" string and the full "messages" list.
    record = {"prompt": "Hi", "prompt_id": "abc", **CHAT}
    sample = record_to_sample(record, source="u.jsonl", line=4)
    assert (sample.location, sample.response) == ("u.jsonl:4", "Hello!")


def test_content_survives_unchanged(repo: Path) -> None:
    text = "Ünïcödé ✓ — line one\nline two\ttab  "
    record = {"prompt": text, "response": text}
    [sample] = only_samples(load_one(write_jsonl(repo / "train.jsonl", [record])))
    assert sample.prompt[0].content == text and sample.response == text


# --- file formats and line numbers ----------------------------------------------------------


def test_jsonl_bom_crlf_and_blank_lines(repo: Path) -> None:
    line = json.dumps(CHAT).encode()
    data = b"\xef\xbb\xbf" + line + b"\r\n\r\n   \r\n" + line + b"\r\n\n" + line
    (repo / "train.jsonl").write_bytes(data)
    samples = only_samples(load_one(repo / "train.jsonl"))
    assert [s.line for s in samples] == [1, 4, 6]
    assert {s.response for s in samples} == {"Hello!"}


def test_json_array_reports_line_where_each_element_starts(repo: Path) -> None:
    text = (
        "[\n"
        '  {"prompt": "one",\n'
        '   "response": "1"},\n'
        "\n"
        '  {"prompt": "two", "response": "2"}, {"prompt": "three",\n'
        '   "response": "3"}\n'
        "   ,\n"
        "  {\n"
        '    "prompt": "four", "response": "4"\n'
        "  }\n"
        "]\n"
    )
    (repo / "train.json").write_text(text, encoding="utf-8")
    samples = only_samples(load_one(repo / "train.json"))
    assert [(s.line, s.response) for s in samples] == [(2, "1"), (5, "2"), (5, "3"), (8, "4")]
    assert {s.source for s in samples} == {"train.json"}


def test_json_array_with_bom(repo: Path) -> None:
    (repo / "train.json").write_bytes(b"\xef\xbb\xbf[\n" + json.dumps(CHAT).encode() + b"\n]")
    assert [s.line for s in only_samples(load_one(repo / "train.json"))] == [2]


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=8),
    indents=st.lists(st.sampled_from([None, 0, 2]), min_size=8, max_size=8),
)
def test_json_array_lines_match_independent_count(
    tmp_path_factory: pytest.TempPathFactory, gaps: list[int], indents: list[int | None]
) -> None:
    # Build the file piece by piece and note each element's line as it is written.
    folder = tmp_path_factory.mktemp("json")
    parts, line = ["["], 1
    expected: list[int] = []
    for index, gap in enumerate(gaps):
        separator = ("," if index else "") + "\n" * gap + " "
        parts.append(separator)
        line += separator.count("\n")
        expected.append(line)
        record = {"prompt": f"q{index}", "response": f"a{index}"}
        element = json.dumps(record, indent=indents[index])
        parts.append(element)
        line += element.count("\n")
    parts.append("\n]\n")
    (folder / "data.json").write_text("".join(parts), encoding="utf-8")
    samples = only_samples(load_one(folder / "data.json"))
    assert [s.line for s in samples] == expected
    assert [s.response for s in samples] == [f"a{i}" for i in range(len(gaps))]


def test_csv_quoted_multiline_fields_report_start_line(repo: Path) -> None:
    text = (
        "prompt,response,system\n"  # line 1: header
        '"Write a haiku\nabout rain.","Soft rain on the roof\nwhispers",\n'  # lines 2-4
        "Name a dog.,Rex.,Be short.\n"  # line 5
        "\n"  # line 6: blank
        'Quote me.,"He said ""hi"".\n\n",\n'  # lines 7-9
    )
    (repo / "train.csv").write_text(text, encoding="utf-8")
    samples = only_samples(load_one(repo / "train.csv"))
    assert [s.line for s in samples] == [2, 5, 7]
    assert samples[0].prompt == (Message("user", "Write a haiku\nabout rain."),)
    assert samples[0].response == "Soft rain on the roof\nwhispers"
    assert samples[1].prompt == (Message("system", "Be short."), Message("user", "Name a dog."))
    assert samples[2].response == 'He said "hi".\n\n'


def test_csv_bom_crlf_alpaca(repo: Path) -> None:
    data = '\ufeffinstruction,input,output\r\nAdd.,"2\r\n3",5\r\nSay hi.,,Hi!\r\n'
    (repo / "train.csv").write_bytes(data.encode("utf-8"))
    samples = only_samples(load_one(repo / "train.csv"))
    assert [(s.line, s.prompt[0].content, s.response) for s in samples] == [
        (2, "Add.\n\n2\r\n3", "5"),
        (4, "Say hi.", "Hi!"),
    ]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20)).filter(
            lambda row: row[0].strip() != "" and row[1].strip() != "" and "\r" not in "".join(row)
        ),
        min_size=1,
        max_size=6,
    )
)
def test_csv_lines_match_independent_count(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str]]
) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["prompt", "response"])
    expected: list[int] = []
    for row in rows:
        expected.append(buffer.getvalue().count("\n") + 1)
        writer.writerow(row)
    folder = tmp_path_factory.mktemp("csv")
    (folder / "data.csv").write_bytes(buffer.getvalue().encode("utf-8"))
    samples = only_samples(load_one(folder / "data.csv"))
    assert [s.line for s in samples] == expected
    assert [(s.prompt[-1].content, s.response) for s in samples] == rows


def test_parquet_rows_stream_with_row_numbers(repo: Path) -> None:
    pyarrow = pytest.importorskip("pyarrow")
    parquet = pytest.importorskip("pyarrow.parquet")
    rows = [{"prompt": f"q{i}", "response": f"a{i}", "system": "S" if i == 2 else None} for i in range(2500)]
    table = pyarrow.Table.from_pylist(rows)
    parquet.write_table(table, repo / "train.parquet", row_group_size=700)
    samples = only_samples(load_one(repo / "train.parquet"))
    assert [s.line for s in samples] == list(range(1, 2501))
    assert samples[2].prompt == (Message("system", "S"), Message("user", "q2"))
    assert samples[2499].response == "a2499"


def test_parquet_chat_column(repo: Path) -> None:
    pyarrow = pytest.importorskip("pyarrow")
    parquet = pytest.importorskip("pyarrow.parquet")
    parquet.write_table(pyarrow.Table.from_pylist([CHAT, CHAT]), repo / "chat.parquet")
    samples = only_samples(load_one(repo / "chat.parquet"))
    assert [(s.line, s.response) for s in samples] == [(1, "Hello!"), (2, "Hello!")]


def test_hf_dataset_saved_to_disk(repo: Path) -> None:
    datasets = pytest.importorskip("datasets")
    (repo / "data").mkdir()
    datasets.Dataset.from_list([CHAT, CHAT, CHAT]).save_to_disk(str(repo / "data" / "saved"))
    samples = only_samples(load_one(repo / "data" / "saved"))
    assert [(s.location, s.response) for s in samples] == [
        ("data/saved:1", "Hello!"),
        ("data/saved:2", "Hello!"),
        ("data/saved:3", "Hello!"),
    ]


def test_hf_dataset_null_columns_count_as_absent(repo: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = [
        {"prompt": "p", "response": "r", "system": None},
        {"prompt": None, "response": None, "system": None},
    ]
    datasets.Dataset.from_list(rows).save_to_disk(str(repo / "saved"))
    first, second = load_one(repo / "saved", skip_invalid=True)
    assert first == Sample("saved", 1, (Message("user", "p"),), "r")
    assert isinstance(second, InvalidRecord) and second.line == 2
    assert second.problem == (
        "the record has no recognised fields (found: prompt=null, response=null, system=null)"
    )


def test_hf_dataset_dict_picks_split(repo: Path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list([{"prompt": "train q", "response": "train a"}]),
            "test": datasets.Dataset.from_list([{"prompt": "test q", "response": "test a"}] * 2),
        }
    ).save_to_disk(str(repo / "dd"))
    assert [s.response for s in only_samples(load_one(repo / "dd"))] == ["train a"]
    assert [s.line for s in only_samples(load_one(repo / "dd", split="test"))] == [1, 2]
    error = error_of(repo / "dd", split="validation")
    assert str(error).startswith("dd: the dataset has no split 'validation' (it has: ")
    assert "train" in (error.fix or "") and "test" in (error.fix or "")


def test_directory_that_is_not_a_dataset(repo: Path) -> None:
    pytest.importorskip("datasets")
    (repo / "folder").mkdir()
    error = error_of(repo / "folder")
    assert str(error).startswith("folder: the directory is not a dataset saved with save_to_disk")


def test_hub_id_goes_to_load_dataset(monkeypatch: pytest.MonkeyPatch, repo: Path) -> None:
    datasets = pytest.importorskip("datasets")
    calls: list[tuple[str, str]] = []

    def fake_load_dataset(name: str, *, split: str) -> list[dict[str, str]]:
        calls.append((name, split))
        return [{"instruction": "Hi", "output": "Hello"}]

    monkeypatch.chdir(repo)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    [sample] = only_samples(load_one("someone/tiny-chat", split="test"))
    assert calls == [("someone/tiny-chat", "test")]
    assert (sample.source, sample.line, sample.response) == ("someone/tiny-chat", 1, "Hello")


def test_hub_failure_names_the_dataset(monkeypatch: pytest.MonkeyPatch, repo: Path) -> None:
    datasets = pytest.importorskip("datasets")

    def failing_load_dataset(name: str, *, split: str) -> None:
        raise ConnectionError("offline\nno route")

    monkeypatch.chdir(repo)
    monkeypatch.setattr(datasets, "load_dataset", failing_load_dataset)
    error = error_of("someone/missing")
    assert str(error).startswith(
        "someone/missing: could not load the Hugging Face dataset (split 'train'): "
        "ConnectionError: offline no route"
    )
    assert error.line is None


# --- bad input ------------------------------------------------------------------------------


def chat(*turns: tuple[str, object]) -> dict[str, object]:
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


BAD_RECORDS = [
    pytest.param([1, 2], "the record is a list, not an object", id="not-object"),
    pytest.param("text", "the record is a string, not an object", id="string-record"),
    pytest.param({"text": "hi"}, "the record has no recognised fields (found: text)", id="unknown"),
    pytest.param({"prompt": 3, "response": "x"}, "'prompt' is a number, expected a string", id="type"),
    pytest.param({"prompt": "x"}, "the field 'response' (or 'completion') is missing", id="no-response"),
    pytest.param({"response": "x"}, "the field 'prompt' is missing", id="missing-prompt"),
    pytest.param(
        {"prompt": "x", "response": "y", "completion": "z"},
        "the record has both 'response' and 'completion'",
        id="both-answers",
    ),
    pytest.param({"messages": "hi"}, "'messages' is a string, expected a list of turns", id="str"),
    pytest.param({"messages": []}, "'messages' is empty", id="no-turns"),
    pytest.param({"messages": ["hi"]}, "messages[0] is a string, not an object", id="turn-type"),
    pytest.param(
        chat(("user", [{"type": "text", "text": "hi"}]), ("assistant", "ok")),
        "messages[0].content is a list, expected a string",
        id="content-type",
    ),
    pytest.param(
        chat(("user", "hi"), ("tool", "42"), ("assistant", "ok")),
        "messages[1] has unknown role 'tool'",
        id="unknown-role",
    ),
    pytest.param(
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "ok"}]},
        "conversations[1] has unknown speaker 'bot'",
        id="unknown-speaker",
    ),
    pytest.param(
        {"conversations": [{"from": "human", "value": 5}, {"from": "gpt", "value": "ok"}]},
        "conversations[0].value is a number, expected a string",
        id="sharegpt-value",
    ),
    pytest.param(
        chat(("user", "hi"), ("assistant", "")),
        "the response (last assistant turn) is empty",
        id="empty",
    ),
    pytest.param(
        chat(("user", "hi"), ("assistant", " \n\t ")),
        "the response (last assistant turn) is empty or whitespace-only",
        id="whitespace",
    ),
    pytest.param(
        {"instruction": "Do it.", "output": "   "},
        "the response (last assistant turn) is empty or whitespace-only",
        id="alpaca-empty",
    ),
    pytest.param(
        chat(("system", "Be nice."), ("assistant", "Hello!")),
        "the prompt has no user turn",
        id="no-user",
    ),
    pytest.param({"prompt": "  ", "response": "ok"}, "the user's prompt is empty", id="no-prompt"),
    pytest.param(
        chat(("user", "hi"), ("assistant", "hello"), ("user", "and?")),
        "the conversation goes on after the last assistant turn (user), so there is no response to screen",
        id="trailing-user",
    ),
    pytest.param(
        chat(("system", "s"), ("user", "hi")),
        "the conversation has no assistant turn, so there is no response to screen",
        id="no-assistant",
    ),
]


@pytest.mark.parametrize(("record", "problem"), BAD_RECORDS)
def test_bad_record_names_file_line_and_fix(repo: Path, record: object, problem: str) -> None:
    path = write_jsonl(repo / "bad.jsonl", [CHAT, record])
    error = error_of(path)
    assert str(error).startswith(f"bad.jsonl:2: {problem}")
    assert (error.path, error.line) == ("bad.jsonl", 2)
    assert error.fix and "\n" not in str(error)


def test_unrecognised_record_fix_lists_formats(repo: Path) -> None:
    error = error_of(write_jsonl(repo / "bad.jsonl", [{"question": "q", "answer": "a"}]))
    assert str(error).startswith("bad.jsonl:1: the record has no recognised fields (found: answer, question)")
    for name in ('"messages"', '"conversations"', '"prompt"', '"completion"', '"instruction"'):
        assert name in (error.fix or "")


def test_invalid_json_line(repo: Path) -> None:
    (repo / "bad.jsonl").write_text(json.dumps(CHAT) + "\n" + '{"prompt": "x", "response": }\n')
    error = error_of(repo / "bad.jsonl")
    assert str(error).startswith("bad.jsonl:2: invalid JSON: Expecting value (column 29)")


def test_non_utf8_byte_reported_at_its_line(repo: Path) -> None:
    good = json.dumps(CHAT).encode()
    (repo / "bad.jsonl").write_bytes(good + b"\n" + good + b"\n" + b'{"prompt": "caf\xe9"}\n')
    error = error_of(repo / "bad.jsonl")
    assert str(error).startswith("bad.jsonl:3: byte 0xe9 at column 16 is not valid UTF-8")
    assert "UTF-8" in (error.fix or "")


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_non_utf8_in_json_and_csv_names_line(repo: Path, suffix: str) -> None:
    json_body = b'[\n{"prompt": "a",\n "response": "\xff"}]'
    body = json_body if suffix == ".json" else b"prompt,response\na,b\nc,\xff\n"
    (repo / f"bad{suffix}").write_bytes(body)
    assert str(error_of(repo / f"bad{suffix}", skip_invalid=True)).startswith(
        f"bad{suffix}:3: byte 0xff at column "
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[\n{"prompt": "a"},\n{"prompt": tru}\n]', "bad.json:3: invalid JSON: Expecting value"),
        ('[{"prompt": "a"},\n]', "bad.json:2: invalid JSON: trailing comma before ']'"),
        ('[{"prompt": "a"}\n{"x": 1}]', "bad.json:2: invalid JSON: expected ',' or ']'"),
        ('[{"prompt": "a", "response": "b"}]\n\n[]', "bad.json:3: invalid JSON: extra data after"),
        ('\n{"prompt": "a", "response": "b"}', "bad.json:2: the top-level JSON value is an object"),
        ('[{"prompt": "a", "response": "b"}', "bad.json:1: invalid JSON: expected ',' or ']'"),
    ],
)
def test_json_syntax_errors_raise_even_when_skipping(repo: Path, text: str, expected: str) -> None:
    (repo / "bad.json").write_text(text)
    assert str(error_of(repo / "bad.json", skip_invalid=True)).startswith(expected)


def test_json_array_element_not_object(repo: Path) -> None:
    (repo / "bad.json").write_text(f"[\n{json.dumps(CHAT)},\n\n42\n]")
    error = error_of(repo / "bad.json")
    assert str(error).startswith("bad.json:4: the record is a number, not an object")


def test_csv_field_count_and_unclosed_quote(repo: Path) -> None:
    (repo / "bad.csv").write_text("prompt,response\na,b\nc,d,e\n")
    assert str(error_of(repo / "bad.csv")).startswith(
        "bad.csv:3: the row has 3 field(s) but the header has 2"
    )
    (repo / "open.csv").write_text('prompt,response\na,b\n"c,d\ne,f\n')
    error = error_of(repo / "open.csv", skip_invalid=True)
    assert str(error).startswith("open.csv:3: invalid CSV: unexpected end of data")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.jsonl", ""),
        ("empty.jsonl", "\n  \n\r\n"),
        ("empty.json", "[ ]"),
        ("empty.json", ""),
        ("empty.csv", "prompt,response\n"),
        ("empty.csv", ""),
    ],
)
def test_empty_file_raises_without_line(repo: Path, name: str, content: str) -> None:
    (repo / name).write_text(content)
    error = error_of(repo / name, skip_invalid=True)
    assert str(error).startswith(f"{name}: no records found")
    assert error.line is None
    assert "the file has no records" in (error.fix or "")


def test_empty_parquet_raises(repo: Path) -> None:
    pyarrow = pytest.importorskip("pyarrow")
    parquet = pytest.importorskip("pyarrow.parquet")
    schema = pyarrow.schema([("prompt", pyarrow.string()), ("response", pyarrow.string())])
    parquet.write_table(schema.empty_table(), repo / "empty.parquet")
    assert str(error_of(repo / "empty.parquet")).startswith("empty.parquet: no records found")


def test_corrupt_parquet_raises(repo: Path) -> None:
    (repo / "broken.parquet").write_bytes(b"not parquet at all")
    error = error_of(repo / "broken.parquet", skip_invalid=True)
    assert str(error).startswith("broken.parquet: not a readable Parquet file (")


def test_missing_file_raises_at_call(repo: Path) -> None:
    with pytest.raises(InputError) as caught:
        iter_records(str(repo / "data" / "nope.jsonl"), skip_invalid=True)  # no iteration needed
    assert str(caught.value).startswith(
        "data/nope.jsonl: file not found (the folder 'data' does not exist either) Fix: check the path"
    )
    assert caught.value.line is None


def test_unsupported_extension(repo: Path) -> None:
    (repo / "train.txt").write_text("hello\n")
    error = error_of(repo / "train.txt", skip_invalid=True)
    assert str(error).startswith("train.txt: unsupported file type '.txt'")
    assert ".jsonl" in (error.fix or "") and ".parquet" in (error.fix or "")


# --- skip_invalid, max_samples, several sources ---------------------------------------------


def test_skip_invalid_collects_problems_and_goes_on(repo: Path) -> None:
    lines = [
        json.dumps(CHAT),
        "{broken",
        json.dumps(chat(("user", "hi"), ("robot", "x"), ("assistant", "ok"))),
        "",
        json.dumps({"prompt": "q", "response": "a"}),
    ]
    data = "\n".join(lines).encode() + b"\n\xff\xfe\n"
    (repo / "mixed.jsonl").write_bytes(data)
    samples, invalid = read_dataset([str(repo / "mixed.jsonl")], skip_invalid=True)
    assert [(s.line, s.response) for s in samples] == [(1, "Hello!"), (5, "a")]
    assert [(r.source, r.line) for r in invalid] == [
        ("mixed.jsonl", 2),
        ("mixed.jsonl", 3),
        ("mixed.jsonl", 6),
    ]
    assert invalid[0].problem.startswith("invalid JSON: ")
    assert invalid[1].problem == "messages[1] has unknown role 'robot'"
    assert invalid[1].fix is not None and "system, user, assistant" in invalid[1].fix
    assert invalid[2].problem == "byte 0xff at column 1 is not valid UTF-8"


def test_skip_invalid_in_csv_and_json(repo: Path) -> None:
    (repo / "mixed.csv").write_text('prompt,response\na,b\nc,\n"d","e\n"\n')
    samples, invalid = read_dataset([str(repo / "mixed.csv")], skip_invalid=True)
    assert [(s.line, s.response) for s in samples] == [(2, "b"), (4, "e\n")]
    assert [(r.line, r.problem) for r in invalid] == [
        (3, "the response (last assistant turn) is empty or whitespace-only")
    ]
    (repo / "mixed.json").write_text(f'[\n"oops",\n{json.dumps(CHAT)}\n]')
    samples, invalid = read_dataset([str(repo / "mixed.json")], skip_invalid=True)
    assert [s.line for s in samples] == [3] and [r.line for r in invalid] == [2]


def test_all_invalid_is_not_an_empty_file(repo: Path) -> None:
    write_jsonl(repo / "bad.jsonl", [[1], [2]])
    samples, invalid = read_dataset([str(repo / "bad.jsonl")], skip_invalid=True)
    assert samples == [] and [r.line for r in invalid] == [1, 2]


def test_several_sources_keep_order_and_names(repo: Path) -> None:
    first = write_jsonl(repo / "a.jsonl", [CHAT, CHAT])
    (repo / "sub").mkdir()
    second = write_jsonl(repo / "sub" / "b.jsonl", [{"prompt": "p", "response": "r"}])
    samples, invalid = read_dataset([first, second])
    assert [s.location for s in samples] == ["a.jsonl:1", "a.jsonl:2", "sub/b.jsonl:1"]
    assert invalid == []


def test_load_samples_checks_every_source_first(repo: Path) -> None:
    first = write_jsonl(repo / "a.jsonl", [CHAT])
    with pytest.raises(InputError, match=r"^missing\.csv: file not found"):
        read_dataset([first, str(repo / "missing.csv")], max_samples=1)


def test_max_samples_stops_reading_early(repo: Path) -> None:
    # The bad record after the limit is never reached, so no error is raised.
    first = write_jsonl(repo / "a.jsonl", [CHAT, [1], CHAT])
    second = write_jsonl(repo / "b.jsonl", [CHAT, CHAT, "bad"])
    samples, invalid = read_dataset([first, second], skip_invalid=True, max_samples=3)
    assert [s.location for s in samples] == ["a.jsonl:1", "a.jsonl:3", "b.jsonl:1"]
    assert [(r.source, r.line) for r in invalid] == [("a.jsonl", 2)]
    samples, _ = read_dataset([first], max_samples=1)
    assert [s.line for s in samples] == [1]


def test_scan_records_where_max_samples_stopped_and_each_input_sha256(repo: Path) -> None:
    first = write_jsonl(repo / "a.jsonl", [CHAT, [1], CHAT])
    second = write_jsonl(repo / "b.jsonl", [CHAT, CHAT])
    scan = scan_dataset([first, second], skip_invalid=True, max_samples=3)
    assert scan.sizes == {"a.jsonl": 2, "b.jsonl": 1} and scan.stopped_after == "b.jsonl:1"
    assert [(r.source, r.line) for r in scan.invalid] == [("a.jsonl", 2)]
    digests = [hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in (first, second)]
    assert [entry.sha256 for entry in scan.inputs] == digests
    assert scan_dataset([first, second], skip_invalid=True).stopped_after is None


@pytest.mark.parametrize("limit", [0, -3])
def test_max_samples_must_be_positive(repo: Path, limit: int) -> None:
    with pytest.raises(ConfigError, match="--max-samples"):
        read_dataset([write_jsonl(repo / "a.jsonl", [CHAT])], max_samples=limit)


def test_load_samples_accepts_a_single_string(repo: Path) -> None:
    samples, _ = read_dataset(write_jsonl(repo / "a.jsonl", [CHAT]))
    assert [s.location for s in samples] == ["a.jsonl:1"]


# --- the input is never modified ------------------------------------------------------------


def fingerprint(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_mtime_ns, stat.st_size


def test_loading_leaves_every_input_file_unchanged(repo: Path) -> None:
    pyarrow = pytest.importorskip("pyarrow")
    parquet = pytest.importorskip("pyarrow.parquet")
    (repo / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(CHAT).encode() + b"\r\n[1]\r\n")
    (repo / "b.json").write_text(f"[{json.dumps(CHAT)}]")
    (repo / "c.csv").write_text('prompt,response\n"a\nb",c\n')
    parquet.write_table(pyarrow.Table.from_pylist([CHAT]), repo / "d.parquet")
    paths = [repo / name for name in ("a.jsonl", "b.json", "c.csv", "d.parquet")]
    for path in paths:
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = [fingerprint(path) for path in paths]
    samples, invalid = read_dataset([str(path) for path in paths], skip_invalid=True)
    assert len(samples) == 4 and len(invalid) == 1
    assert [fingerprint(path) for path in paths] == before
    names = sorted(path.name for path in repo.iterdir())
    assert names == [".git", "a.jsonl", "b.json", "c.csv", "d.parquet"]


# --- display paths --------------------------------------------------------------------------


def test_display_path_relative_to_repo_root(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nested = repo / "data" / "sub" / "train.jsonl"
    monkeypatch.chdir("/")
    assert display_path(nested) == "data/sub/train.jsonl"
    assert display_path(str(nested)) == "data/sub/train.jsonl"
    monkeypatch.chdir(repo / ".git")
    assert display_path("../data/x.csv") == "data/x.csv"
    assert find_repo_root(nested) == repo


def test_display_path_with_git_file_worktree(tmp_path: Path) -> None:
    (tmp_path / "wt").mkdir()
    (tmp_path / "wt" / ".git").write_text("gitdir: /elsewhere\n")
    assert display_path(tmp_path / "wt" / "d" / "f.json") == "d/f.json"


def test_display_path_outside_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if find_repo_root(tmp_path) is not None:
        pytest.skip("pytest's temporary directory lies inside a git repository")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert display_path(tmp_path / "work" / "d" / "train.jsonl") == "d/train.jsonl"
    assert display_path("d/train.jsonl") == "d/train.jsonl"
    outside = display_path(tmp_path / "other" / "train.jsonl")
    assert outside == "train.jsonl"
    assert not os.path.isabs(display_path(tmp_path / "elsewhere.csv"))


def test_sample_source_is_the_display_path(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "data").mkdir()
    path = write_jsonl(repo / "data" / "train.jsonl", [CHAT])
    monkeypatch.chdir("/")
    [sample] = only_samples(load_one(path))
    assert sample.location == "data/train.jsonl:1"


# --- the bundled demo dataset ---------------------------------------------------------------


def test_demo_dataset_loads() -> None:
    path = REPO_ROOT / "examples" / "demo" / "train.jsonl"
    samples, invalid = read_dataset([str(path)])
    assert invalid == [] and len(samples) == 24
    assert [s.line for s in samples] == list(range(1, 25))
    assert sum(len([m for m in s.prompt if m.role == "user"]) > 1 for s in samples) >= 3
    assert sum(s.prompt[0].role == "system" for s in samples) >= 3
    word_counts = [len(s.response.split()) for s in samples]
    assert all(30 <= n <= 90 for n in word_counts), word_counts
    assert len({s.content_hash for s in samples}) == 24
