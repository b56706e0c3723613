"""``--prompt-field`` / ``--response-field``: datasets whose columns have other names, from the
record converter through the loaders, the config file and the settings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from datalint_persona.config_file import discover_config, read_config_file
from datalint_persona.dataset.field_names import FieldNames
from datalint_persona.dataset.loaders import iter_dataset, scan_dataset
from datalint_persona.dataset.records import record_to_sample
from datalint_persona.dataset.validation import validate_sources
from datalint_persona.errors import ConfigError, InputError
from datalint_persona.settings import screen_options
from datalint_persona.types import InvalidRecord, Message, Sample

QA = [{"question": "What is 2 + 3?", "answer": "5"}, {"question": "Capital of France?", "answer": "Paris"}]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_jsonl(path: Path, records: list[dict[str, object]]) -> str:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return str(path)


def test_named_fields_become_prompt_and_response() -> None:
    names = FieldNames("question", "answer")
    sample = record_to_sample({**QA[0], "system": "Be brief."}, source="qa.jsonl", line=4, names=names)
    assert sample == Sample(
        "qa.jsonl", 4, (Message("system", "Be brief."), Message("user", "What is 2 + 3?")), "5"
    )


def test_named_fields_win_over_format_detection() -> None:
    # Without names this record is Alpaca (instruction/output); named, its fields are the ones given.
    record = {"instruction": "Sum", "output": "ignored", "question": "2 + 3?", "answer": "5"}
    sample = record_to_sample(record, source="a.jsonl", line=1, names=FieldNames("question", "answer"))
    assert (sample.prompt, sample.response) == ((Message("user", "2 + 3?"),), "5")


def test_one_name_keeps_the_default_for_the_other() -> None:
    assert FieldNames.of("question", None) == FieldNames("question", "response")
    assert FieldNames.of(None, "answer") == FieldNames("prompt", "answer")
    assert FieldNames.of(None, None) is None


@pytest.mark.parametrize(
    "prompt, response, needle",
    [("", "answer", "--prompt-field is ''"), ("text", "text", "both name 'text'")],
)
def test_bad_field_names_are_config_errors(prompt: str, response: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        FieldNames(prompt, response)


def test_missing_named_field_names_file_line_field_and_option(repo: Path) -> None:
    source = write_jsonl(repo / "qa.jsonl", [QA[0], {"question": "Hi?", "reply": "Hello"}])
    names = FieldNames("question", "answer")
    with pytest.raises(InputError) as caught:
        list(iter_dataset([source], names=names))
    error = caught.value
    assert (error.path, error.line) == ("qa.jsonl", 2)
    assert error.problem == "the field 'answer' (--response-field) is missing (found: question, reply)"
    assert error.fix is not None and "--response-field" in error.fix and "response-field" in error.fix
    items = list(iter_dataset([source], names=names, skip_invalid=True))
    assert [type(item) for item in items] == [Sample, InvalidRecord]


def test_named_field_that_is_not_a_string(repo: Path) -> None:
    source = write_jsonl(repo / "qa.jsonl", [{"question": ["a"], "answer": "b"}])
    with pytest.raises(InputError, match=r"^qa\.jsonl:1: 'question' is a list, expected a string"):
        list(iter_dataset([source], names=FieldNames("question", "answer")))


def test_unrecognised_record_points_at_the_options(repo: Path) -> None:
    source = write_jsonl(repo / "qa.jsonl", QA)
    with pytest.raises(InputError) as caught:
        list(iter_dataset([source]))
    assert "--prompt-field and --response-field" in (caught.value.fix or "")


def test_csv_and_validation_with_renamed_columns(repo: Path) -> None:
    with open(repo / "qa.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "question", "answer"])
        writer.writeheader()
        writer.writerows({"id": str(i), **row} for i, row in enumerate(QA))
    names = FieldNames("question", "answer")
    samples = [item for item in iter_dataset(["qa.csv"], names=names) if isinstance(item, Sample)]
    assert [(s.location, s.response) for s in samples] == [("qa.csv:2", "5"), ("qa.csv:3", "Paris")]
    assert scan_dataset(["qa.csv"], names=names).sizes == {"qa.csv": 2}
    assert validate_sources(["qa.csv"], names=names).n_samples == 2


# --- the config file and the settings -----------------------------------------------------------


def test_config_keys_reach_the_settings(repo: Path) -> None:
    (repo / ".persona-lint.yaml").write_text("prompt-field: question\nresponse-field: answer\n")
    options = screen_options({}, discover_config())
    assert (options.prompt_field, options.response_field) == ("question", "answer")
    # The command line wins over the config, key by key.
    options = screen_options({"response_field": "reply"}, discover_config())
    assert (options.prompt_field, options.response_field) == ("question", "reply")


def test_pyproject_keys_reach_the_settings(repo: Path) -> None:
    (repo / "pyproject.toml").write_text('[tool.persona-lint]\nprompt-field = "instruction"\n')
    options = screen_options({}, discover_config())
    assert (options.prompt_field, options.response_field) == ("instruction", None)


def test_unknown_keys_are_still_rejected(repo: Path) -> None:
    (repo / ".persona-lint.yaml").write_text("seed: 1\nprompt_field: question\n")
    with pytest.raises(ConfigError) as caught:
        read_config_file(repo / ".persona-lint.yaml")
    message = str(caught.value)
    assert ".persona-lint.yaml:2: key '(top level)'" in message
    assert "Did you mean 'prompt-field'?" in message


def test_an_empty_field_name_in_the_config_is_rejected(repo: Path) -> None:
    (repo / ".persona-lint.yaml").write_text("response-field: ''\n")
    with pytest.raises(ConfigError, match=r"\.persona-lint\.yaml:1: key 'response-field'"):
        read_config_file(repo / ".persona-lint.yaml")
