"""Hostile input, at volume: every loader and the config parser either parse or fail with one line.

Two kinds of evidence, both counted in docs/reliability.md:

- hypothesis property tests against every record format, every file format and the config
  parser (``EXAMPLES`` per property, derandomized so CI runs the same cases every time);
- a hand-made corpus of hostile files (``CORPUS`` plus ``BIG_FILES``), each read through the loader
  API and through the ``persona-lint`` CLI: ``screen`` for files that must fail (they fail before
  the model is loaded), ``validate`` for files that must parse.

"One line" means: exit code 2, exactly one line on stderr that names the file (and the line for a
record problem), and no traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datalint_persona.cli.main import main
from datalint_persona.config_file import read_config_file
from datalint_persona.dataset.loaders import iter_dataset
from datalint_persona.dataset.records import record_to_sample
from datalint_persona.errors import ConfigError, InputError
from datalint_persona.types import InvalidRecord, Sample

EXAMPLES = 150  # per property test; see docs/reliability.md
CLI_EXAMPLES = 25
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MAX_MESSAGE = 1000
KEYS = [
    "messages",
    "conversations",
    "prompt",
    "response",
    "completion",
    "system",
    "instruction",
    "input",
    "output",
]
TURN_KEYS = ["role", "content", "from", "value"]
ROLES = ["system", "user", "assistant", "human", "gpt", "tool", "", "USER"]

# --------------------------------------------------------------------------- strategies

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
texts = st.one_of(st.text(max_size=30), st.sampled_from(["", " ", "\n\t ", "hi", "\x00", "\ufeff", "\ud800"]))
turns = st.dictionaries(
    st.sampled_from(TURN_KEYS), st.one_of(st.sampled_from(ROLES), texts, json_values), max_size=4
)
# Records shaped like the accepted formats, with wrong types, missing keys and odd roles mixed in.
records = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(KEYS) | st.text(max_size=6),
        st.one_of(texts, json_values, st.lists(turns, max_size=5)),
        max_size=5,
    ),
)


def read_dataset(sources: list[str], **options: Any) -> tuple[list[Sample], list[InvalidRecord]]:
    """Every sample and invalid record :func:`iter_dataset` streams, apart and in order."""
    items = list(iter_dataset(sources, **options))
    samples = [item for item in items if isinstance(item, Sample)]
    return samples, [item for item in items if isinstance(item, InvalidRecord)]


def _dump(record: object) -> str:
    return json.dumps(record, ensure_ascii=bool(hash(repr(record)) % 2))


# One JSONL line: a record, raw text, or raw bytes.
jsonl_lines = st.one_of(
    records.map(lambda r: _dump(r).encode("utf-8", "surrogatepass")),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),
)


def _assert_good_error(error: InputError | ConfigError, shown: str, n_lines: int | None = None) -> None:
    text = str(error)
    assert "\n" not in text and "\r" not in text, text
    assert len(text) < MAX_MESSAGE, text[:200]
    assert text.startswith(shown), text
    if isinstance(error, InputError) and error.line is not None and n_lines is not None:
        assert 1 <= error.line <= n_lines, (error.line, n_lines)
        assert text.startswith(f"{shown}:{error.line}: ")


def _assert_sample(sample: Sample) -> None:
    """What every loaded sample guarantees to the later stages."""
    assert sample.response.strip()
    assert any(m.role == "user" and m.content.strip() for m in sample.prompt)
    for text in (sample.response, *(m.content for m in sample.prompt)):
        text.encode("utf-8")  # no lone surrogates: the tokenizer and the cache need real text


# --------------------------------------------------------------------------- property tests


@PROPERTY
@given(record=records)
def test_any_record_becomes_a_sample_or_one_line_error(record: object) -> None:
    try:
        sample = record_to_sample(record, source="data/s.jsonl", line=7)
    except InputError as error:
        _assert_good_error(error, "data/s.jsonl:7")
        return
    _assert_sample(sample)


@PROPERTY
@given(lines=st.lists(jsonl_lines, max_size=8), crlf=st.booleans(), bom=st.booleans())
def test_any_jsonl_bytes_load_or_fail_at_a_line(
    tmp_path: Path, lines: list[bytes], crlf: bool, bom: bool
) -> None:
    data = (b"\xef\xbb\xbf" if bom else b"") + b"".join(line + (b"\r\n" if crlf else b"\n") for line in lines)
    path = tmp_path / "h.jsonl"
    path.write_bytes(data)
    n_lines = data.count(b"\n")
    try:
        samples, _ = read_dataset([str(path)])
    except InputError as error:
        _assert_good_error(error, "h.jsonl", n_lines)
    else:
        for sample in samples:
            _assert_sample(sample)
    # With --skip-invalid every non-blank line is either a sample or an invalid record.
    raw_lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")[:n_lines]
    expected = sum(1 for raw in raw_lines if _nonblank(raw))
    try:
        samples, invalid = read_dataset([str(path)], skip_invalid=True)
    except InputError as error:
        assert expected == 0 and "no records found" in str(error)
        return
    assert len(samples) + len(invalid) == expected
    lines_read = sorted([*(s.line for s in samples), *(r.line for r in invalid)])
    assert lines_read == [n for n, raw in enumerate(raw_lines, start=1) if _nonblank(raw)]


def _nonblank(raw: bytes) -> bool:
    try:
        return bool(raw.decode("utf-8").strip())
    except UnicodeDecodeError:
        return True


def _mutate(text: str, cut: int, insert: str) -> str:
    position = cut % (len(text) + 1)
    return text[:position] + insert + text[position:]


@PROPERTY
@given(
    items=st.lists(records, max_size=5),
    indent=st.sampled_from([None, 1, 2]),
    cut=st.integers(0, 10_000),
    insert=st.sampled_from(["", ",", "]", "[", "{", '"', "\n", "\x00", "}"]),
)
def test_any_json_array_loads_or_fails_at_a_line(
    tmp_path: Path, items: list[object], indent: int | None, cut: int, insert: str
) -> None:
    text = _mutate(json.dumps(items, indent=indent), cut, insert)
    path = tmp_path / "h.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        samples, _ = read_dataset([str(path)], skip_invalid=bool(cut % 2))
    except InputError as error:
        _assert_good_error(error, "h.json", text.count("\n") + 1)
        return
    for sample in samples:
        _assert_sample(sample)


@PROPERTY
@given(
    header=st.lists(st.sampled_from([*KEYS, "x", ""]), min_size=1, max_size=4),
    rows=st.lists(
        st.lists(texts | st.sampled_from(['"', '""', ",", "\r\n", '"a\nb"']), max_size=5), max_size=5
    ),
)
def test_any_csv_loads_or_fails_at_a_line(tmp_path: Path, header: list[str], rows: list[list[str]]) -> None:
    text = "\n".join(",".join(cells) for cells in [header, *rows]) + "\n"
    path = tmp_path / "h.csv"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        samples, _ = read_dataset([str(path)], skip_invalid=len(rows) % 2 == 1)
    except InputError as error:
        _assert_good_error(error, "h.csv", text.count("\n") + 1)
        return
    for sample in samples:
        _assert_sample(sample)


@settings(PROPERTY, max_examples=EXAMPLES // 3)
@given(
    columns=st.dictionaries(
        st.sampled_from(KEYS[2:] + ["x"]),
        st.sampled_from(["text", "blank", "int", "null"]),
        min_size=1,
        max_size=4,
    ),
    n_rows=st.integers(0, 4),
)
def test_any_parquet_table_loads_or_fails(tmp_path: Path, columns: dict[str, str], n_rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    values: dict[str, Callable[[int], object]] = {
        "text": lambda i: f"text {i}",
        "blank": lambda i: " ",
        "int": lambda i: i,
        "null": lambda i: None,
    }
    table = pa.table({name: [values[kind](i) for i in range(n_rows)] for name, kind in columns.items()})
    path = tmp_path / "h.parquet"
    pq.write_table(table, path)
    try:
        samples, _ = read_dataset([str(path)])
    except InputError as error:
        _assert_good_error(error, "h.parquet", max(n_rows, 1))
        return
    assert len(samples) == n_rows
    for sample in samples:
        _assert_sample(sample)


config_values = st.dictionaries(
    st.sampled_from(["model", "vectors", "traits", "batch-size", "rules", "fail-on", "include", "extends"])
    | st.text(max_size=8),
    json_values,
    max_size=5,
)


@PROPERTY
@given(
    document=st.one_of(
        config_values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
        st.text(max_size=80),
        st.sampled_from(
            ["!!python/object/apply:os.system ['true']", "a: !!python/name:os.system", "&a [*a]"]
        ),
    )
)
def test_any_config_text_is_read_or_refused_in_one_line(tmp_path: Path, document: str) -> None:
    path = tmp_path / "h.yaml"
    path.write_bytes(document.encode("utf-8", "surrogatepass"))
    try:
        config = read_config_file(path)
    except ConfigError as error:
        _assert_good_error(error, str(path))
        return
    assert isinstance(config.values, dict)
    assert not {"include", "extends"} & set(config.values)  # no key can pull in another file


@settings(PROPERTY, max_examples=CLI_EXAMPLES)
@given(lines=st.lists(jsonl_lines, min_size=1, max_size=4))
def test_cli_refuses_any_bad_jsonl_in_one_line(
    tmp_path: Path, tiny_llama_dir: Path, vectors_dir: Path, lines: list[bytes]
) -> None:
    bad = b"[1]"  # always at least one invalid record, so the run must stop before the model loads
    data = b"\n".join([*lines, bad]) + b"\n"
    path = tmp_path / "h.jsonl"
    path.write_bytes(data)
    result = _screen(path, tiny_llama_dir, vectors_dir, tmp_path)
    _assert_one_line(result, "h.jsonl:")


# --------------------------------------------------------------------------- the hand-made corpus


@dataclass(frozen=True)
class Hostile:
    name: str  # the file name: its suffix picks the loader
    content: bytes
    samples: int | None  # None: the file must be refused
    words: str = ""  # expected in the error message
    line: int | None = None  # expected line of the error


def _jsonl(*records: object) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def _chat(*roles_and_texts: tuple[str, str]) -> dict[str, Any]:
    return {"messages": [{"role": role, "content": text} for role, text in roles_and_texts]}


GOOD = {"prompt": "How do I bake bread?", "response": "Mix flour and water."}
DEEP = 100_000


def _parquet(table: dict[str, list[Any]], truncate: bool = False) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table(table), buffer)
    data = buffer.getvalue()
    return data[: len(data) // 2] if truncate else data


CORPUS = [
    Hostile("truncated.jsonl", _jsonl(GOOD) + b'{"prompt": "hi", "resp', None, "invalid JSON", 2),
    Hostile("truncated.json", b'[{"prompt": "a", "response": "b"}, {"prompt": "c"', None, "invalid JSON", 1),
    Hostile("wrong-type.jsonl", _jsonl({"prompt": 5, "response": "x"}), None, "'prompt' is a number", 1),
    Hostile("messages-string.jsonl", _jsonl({"messages": "hello"}), None, "expected a list", 1),
    Hostile("turn-not-object.jsonl", _jsonl({"messages": ["hi", "there"]}), None, "not an object", 1),
    Hostile("scalars.jsonl", b'"text"\n42\nnull\ntrue\n', None, "not an object", 1),
    Hostile("deep.jsonl", _jsonl(GOOD) + b"[" * DEEP + b"\n", None, "nested too deeply", 2),
    Hostile("deep.json", b"[" * DEEP, None, "nested too deeply", 1),
    Hostile(
        "deep.yaml-as.jsonl", b'{"a": ' * DEEP + b"1" + b"}" * DEEP + b"\n", None, "nested too deeply", 1
    ),
    Hostile("deep-but-fine.jsonl", _jsonl({**GOOD, "meta": json.loads("[" * 200 + "]" * 200)}), 1),
    Hostile("nul-raw.jsonl", b'{"prompt": "a\x00b", "response": "c"}\n', None, "invalid JSON", 1),
    Hostile("nul-escaped.jsonl", _jsonl({"prompt": "a\x00b", "response": "c\x00"}), 1),
    Hostile("nul-only.jsonl", b"\x00" * 1000, None, "invalid JSON", 1),
    Hostile(
        "latin1.jsonl",
        _jsonl(GOOD) + '{"prompt": "café", "response": "x"}\n'.encode("latin-1"),
        None,
        "not valid UTF-8",
        2,
    ),
    Hostile(
        "latin1.json", '[{"prompt": "café", "response": "x"}]'.encode("latin-1"), None, "not valid UTF-8", 1
    ),
    Hostile("latin1.csv", "prompt,response\ncafé,x\n".encode("latin-1"), None, "not valid UTF-8", 2),
    Hostile("lone-surrogate.jsonl", b'{"prompt": "a\\ud800", "response": "b"}\n', None, "lone surrogate", 1),
    Hostile("utf16.jsonl", json.dumps(GOOD).encode("utf-16"), None, "not valid UTF-8", 1),
    Hostile("bom.jsonl", b"\xef\xbb\xbf" + _jsonl(GOOD, GOOD), 2),
    Hostile("bom.json", b"\xef\xbb\xbf" + json.dumps([GOOD]).encode(), 1),
    Hostile("bom.csv", b"\xef\xbb\xbfprompt,response\r\nhi,there\r\n", 1),
    Hostile(
        "bom-twice.jsonl",
        b"\xef\xbb\xbf" + _jsonl(GOOD) + b"\xef\xbb\xbf" + _jsonl(GOOD),
        None,
        "invalid JSON",
        2,
    ),
    Hostile("crlf.jsonl", _jsonl(GOOD, GOOD).replace(b"\n", b"\r\n"), 2),
    Hostile("cr-only.jsonl", _jsonl(GOOD, GOOD).replace(b"\n", b"\r"), None, "invalid JSON", 1),
    Hostile("crlf-in-text.jsonl", _jsonl({"prompt": "a\r\nb", "response": "c\r\n"}), 1),
    Hostile("mixed-csv-line.jsonl", _jsonl(GOOD) + b"prompt,response\n", None, "invalid JSON", 2),
    Hostile("jsonl-in.json", _jsonl(GOOD, GOOD), None, "is an object, so this is not a dataset", 1),
    Hostile("json-in.csv", _jsonl(GOOD, GOOD), None, "no recognised fields", 2),
    Hostile("yaml-in.jsonl", b"prompt: hi\nresponse: there\n", None, "invalid JSON", 1),
    Hostile("object.json", json.dumps(GOOD).encode(), None, "is an object, so this is not a dataset", 1),
    Hostile("trailing-comma.json", json.dumps([GOOD])[:-1].encode() + b",]", None, "trailing comma", 1),
    Hostile(
        "two-formats.jsonl",
        _jsonl(GOOD, {"instruction": "Sum", "output": "5"}, _chat(("user", "a"), ("assistant", "b"))),
        3,
    ),
    Hostile(
        "assistant-first.jsonl",
        _jsonl(_chat(("assistant", "Hi!"), ("user", "Hello"), ("assistant", "Yes"))),
        1,
    ),
    Hostile("system-late.jsonl", _jsonl(_chat(("user", "a"), ("system", "be nice"), ("assistant", "b"))), 1),
    Hostile(
        "user-last.jsonl",
        _jsonl(_chat(("user", "a"), ("assistant", "b"), ("user", "c"))),
        None,
        "goes on after the last assistant turn",
        1,
    ),
    Hostile("no-user.jsonl", _jsonl(_chat(("system", "s"), ("assistant", "b"))), None, "no user turn", 1),
    Hostile("no-assistant.jsonl", _jsonl(_chat(("user", "a"), ("user", "b"))), None, "no assistant turn", 1),
    Hostile(
        "tool-role.jsonl",
        _jsonl(_chat(("user", "a"), ("tool", "{}"), ("assistant", "b"))),
        None,
        "unknown role",
        1,
    ),
    Hostile("empty-response.jsonl", _jsonl({"prompt": "a", "response": ""}), None, "empty", 1),
    Hostile("blank-response.jsonl", _jsonl({"prompt": "a", "response": " \n\t\u3000"}), None, "empty", 1),
    Hostile(
        "blank-chat-response.jsonl", _jsonl(_chat(("user", "a"), ("assistant", "   "))), None, "empty", 1
    ),
    Hostile("blank-prompt.jsonl", _jsonl({"prompt": "  ", "response": "b"}), None, "prompt is empty", 1),
    Hostile("blank-response.csv", b"prompt,response\na,\n", None, "empty", 2),
    Hostile(
        "both-answers.jsonl", _jsonl({"prompt": "a", "response": "b", "completion": "c"}), None, "both", 1
    ),
    Hostile("newline-key.jsonl", _jsonl({"a\nb" * 50: 1}), None, "no recognised fields", 1),
    Hostile(
        "long-role.jsonl", _jsonl(_chat(("x" * 100_000, "a"), ("assistant", "b"))), None, "unknown role", 1
    ),
    Hostile(
        "nan.jsonl",
        b'{"prompt": "a", "response": "b", "score": NaN}\n{"prompt": NaN, "response": "b"}\n',
        None,
        "'prompt' is a number",
        2,
    ),
    Hostile("duplicate-keys.jsonl", b'{"prompt": "a", "prompt": "b", "response": "c"}\n', 1),
    Hostile("empty.jsonl", b"", None, "no records found"),
    Hostile("whitespace.jsonl", b" \n\t\n\r\n   \n", None, "no records found"),
    Hostile("empty.json", b"  \n", None, "no records found"),
    Hostile("empty-array.json", b"[]", None, "no records found"),
    Hostile("empty.csv", b"", None, "no records found"),
    Hostile("header-only.csv", b"prompt,response\n", None, "no records found"),
    Hostile("unclosed-quote.csv", b'prompt,response\n"a,b\n', None, "invalid CSV", 2),
    Hostile("short-row.csv", b"prompt,response\na\n", None, "field(s) but the header has", 2),
    Hostile("nul.csv", b"prompt,response\na\x00,b\n", 1),
    Hostile("long-field.csv", b"prompt,response\na," + b"y" * 1_000_000 + b"\n", 1),
    Hostile("garbage.parquet", b"PAR1 this is not parquet PAR1", None, "not a readable Parquet file"),
    Hostile(
        "truncated.parquet",
        _parquet({"prompt": ["a"] * 50, "response": ["b"] * 50}, truncate=True),
        None,
        "not a readable Parquet file",
    ),
    Hostile("int-columns.parquet", _parquet({"prompt": [1, 2], "response": [3, 4]}), None, "is a number", 1),
    Hostile("null-response.parquet", _parquet({"prompt": ["a"], "response": [None]}), None, "missing", 1),
    Hostile("good.parquet", _parquet({"prompt": ["a", "b"], "response": ["c", "d"]}), 2),
    Hostile("random-bytes.jsonl", bytes(range(256)) * 8, None, "", 1),
    Hostile("no-suffix", _jsonl(GOOD), None, "unsupported file type"),
    Hostile("data.txt", _jsonl(GOOD), None, "unsupported file type"),
]
BIG_FILES = {  # built on demand: 50 MB and a million lines
    "single-line-50mb.jsonl": (lambda: json.dumps({"prompt": "p", "response": "y" * 50_000_000}).encode(), 1),
    "garbage-line-50mb.jsonl": (lambda: b"x" * 50_000_000, None),
    "million-empty-lines.jsonl": (lambda: b"\n" * 1_000_000, None),
    "million-empty-lines-then-one.jsonl": (lambda: b"\r\n" * 1_000_000 + _jsonl(GOOD), 1),
    "million-empty-lines.csv": (lambda: b"prompt,response\n" + b"\n" * 1_000_000, None),
}
N_CORPUS_FILES = len(CORPUS) + len(BIG_FILES)


def _screen(path: Path, model: Path, vectors: Path, cache: Path, *extra: str) -> Result:
    args = [str(path), "--model", str(model), "--vectors", str(vectors), "--cache-dir", str(cache / "cache")]
    return CliRunner().invoke(main, [*args, "--device", "cpu", "--quiet", *extra], catch_exceptions=False)


def _assert_one_line(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[:3000]
    assert "Traceback" not in result.output
    assert len(lines[0]) <= 2100
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # display paths are then plain file names


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_corpus_file_through_the_loader(tmp_path: Path, case: Hostile) -> None:
    path = tmp_path / case.name
    path.write_bytes(case.content)
    if case.samples is not None:
        samples, invalid = read_dataset([str(path)])
        assert (len(samples), invalid) == (case.samples, [])
        for sample in samples:
            _assert_sample(sample)
        return
    with pytest.raises(InputError) as caught:
        read_dataset([str(path)])
    _assert_good_error(caught.value, case.name)
    assert case.words in str(caught.value)
    assert caught.value.line == case.line


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_corpus_file_through_the_cli(
    tmp_path: Path, tiny_llama_dir: Path, vectors_dir: Path, case: Hostile
) -> None:
    path = tmp_path / case.name
    path.write_bytes(case.content)
    if case.samples is not None:
        result = CliRunner().invoke(main, ["validate", case.name, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        [source] = json.loads(result.stdout)["sources"]
        assert (source["samples"], source["invalid"]) == (case.samples, 0)
        return
    where = case.name if case.line is None else f"{case.name}:{case.line}: "
    _assert_one_line(_screen(path, tiny_llama_dir, vectors_dir, tmp_path), where, case.words)
    _assert_one_line(CliRunner().invoke(main, ["validate", case.name]), where, case.words)


@pytest.mark.parametrize("name", sorted(BIG_FILES))
def test_big_files_through_the_cli(
    tmp_path: Path, tiny_llama_dir: Path, vectors_dir: Path, name: str
) -> None:
    build, expected = BIG_FILES[name]
    (tmp_path / name).write_bytes(build())
    if expected is None:
        _assert_one_line(_screen(tmp_path / name, tiny_llama_dir, vectors_dir, tmp_path), name)
        return
    result = CliRunner().invoke(main, ["validate", name, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [source] = json.loads(result.stdout)["sources"]
    assert source["samples"] == expected


def test_debug_shows_the_traceback(tmp_path: Path, tiny_llama_dir: Path, vectors_dir: Path) -> None:
    (tmp_path / "bad.jsonl").write_bytes(b"[1]\n")
    quiet = _screen(tmp_path / "bad.jsonl", tiny_llama_dir, vectors_dir, tmp_path)
    _assert_one_line(quiet, "bad.jsonl:1")
    loud = _screen(tmp_path / "bad.jsonl", tiny_llama_dir, vectors_dir, tmp_path, "--debug")
    assert loud.exit_code == 2
    assert "Traceback" in loud.stderr and "InputError" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1] == quiet.stderr.strip()


def test_skip_invalid_screens_the_good_hostile_records(
    tmp_path: Path, tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    """Hostile but valid records (BOM, CRLF, NUL, roles out of order) screen end to end; the bad
    ones are reported as invalid-record findings and counted in a warning."""
    lines = [
        json.dumps(_chat(("assistant", "Hi!"), ("user", "Hello\x00"), ("assistant", "Yes"))),
        "{broken",
        json.dumps({"instruction": "Sum\r\n", "output": "5\r\n"}),
        json.dumps({"prompt": "a", "response": "  "}),
    ]
    (tmp_path / "mixed.jsonl").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    result = _screen(
        tmp_path / "mixed.jsonl",
        tiny_llama_dir,
        vectors_dir,
        tmp_path,
        "--skip-invalid",
        "--format",
        "json",
        "--fail-on",
        "never",
        "--max-new-tokens",
        "4",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [s["line"] for s in report["samples"]] == [1, 3]
    assert [(r["line"], r["problem"][:12]) for r in report["invalid"]] == [
        (2, "invalid JSON"),
        (4, "the response"),
    ]
    assert "2 invalid record(s) were skipped (--skip-invalid); see the findings." in report["warnings"]


def test_validate_with_skip_invalid_counts_and_lists_the_bad_records(tmp_path: Path) -> None:
    import hashlib

    data = _jsonl(GOOD) + b"{oops\n" + _jsonl({"prompt": "a", "response": " "})
    (tmp_path / "x.jsonl").write_bytes(data)
    result = CliRunner().invoke(main, ["validate", "x.jsonl", "--skip-invalid"])
    assert result.exit_code == 1, result.output
    digest = hashlib.sha256(data).hexdigest()[:16]
    assert result.stdout == f"x.jsonl: 1 samples, 2 invalid (sha256 {digest})\n"
    assert [line.split(": ")[0] for line in result.stderr.splitlines()] == ["x.jsonl:2", "x.jsonl:3"]


@pytest.mark.parametrize(
    "config, where",
    [
        ("seed: 1\nrules:\n  evil:\n    level: loud\n", ".persona-lint.yaml:4: key 'rules.evil.level'"),
        ("seed: 1\n\nmodle: x\n", ".persona-lint.yaml:3: key '(top level)'"),
        ("traits:\n  - evil\n  - 3\n", ".persona-lint.yaml:3: key 'traits.1'"),
        ("fail-on: error\nrules:\n  evil: [unclosed\n", ".persona-lint.yaml:4: invalid YAML"),
        ("- a list\n", ".persona-lint.yaml:1: key '(top level)'"),
    ],
)
def test_config_errors_name_file_and_line(
    tmp_path: Path, tiny_llama_dir: Path, vectors_dir: Path, config: str, where: str
) -> None:
    (tmp_path / "train.jsonl").write_bytes(_jsonl(GOOD))
    (tmp_path / ".persona-lint.yaml").write_text(config, encoding="utf-8")
    _assert_one_line(_screen(tmp_path / "train.jsonl", tiny_llama_dir, vectors_dir, tmp_path), where)


def _outcome(path: Path) -> object:
    try:
        samples, invalid = read_dataset([str(path)], skip_invalid=True)
    except InputError as error:
        return str(error)
    return [(s.line, s.prompt, s.response) for s in samples], [(r.line, r.problem) for r in invalid]


@PROPERTY
@given(
    items=st.lists(records, max_size=6),
    indent=st.sampled_from([None, 1, 3]),
    cut=st.integers(0, 10_000),
    insert=st.sampled_from(["", ",", "]", "\n", "1e", '"\\u12']),
    chunk=st.integers(1, 40),
)
def test_json_arrays_stream_alike_whatever_the_chunk_size(
    tmp_path: Path,
    items: list[object],
    indent: int | None,
    cut: int,
    insert: str,
    chunk: int,
) -> None:
    """A .json array is read in chunks; tiny chunks cut every value and line at every place, and
    must give the same samples, lines and errors as one chunk holding the whole file."""
    from datalint_persona.dataset import json_array

    text = _mutate(json.dumps(items, indent=indent) + "\n", cut, insert)
    path = tmp_path / "c.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    whole = _outcome(path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_array, "CHUNK_CHARS", chunk)
        assert _outcome(path) == whole
    if insert == "" and items:  # the unmutated file: every element, at its line
        assert not isinstance(whole, str)
