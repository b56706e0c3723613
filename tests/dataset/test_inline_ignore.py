"""The record-level ``persona_lint`` key: read in every format, kept off the screened text, and
refused with file:line when malformed or naming an unknown trait."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from datalint_persona.dataset.loaders import iter_dataset, scan_dataset
from datalint_persona.dataset.records import record_to_sample
from datalint_persona.errors import InputError
from datalint_persona.screening.spool import SampleSpool
from datalint_persona.types import Finding, InlineIgnore, InvalidRecord, Message, Sample, SampleScore
from datalint_persona.verdicts.inline_ignore import check_ignored_traits, suppress_in_source

PLAIN = {"prompt": "Play the villain.", "response": "I will rule the world."}
REASON = "Villain dialogue in the fiction subset."


def _with(value: object, base: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**(base or PLAIN), "persona_lint": value}


@pytest.mark.parametrize(
    ("ignore", "traits"),
    [
        (["evil"], ("evil",)),
        (["evil", "humorous", "evil"], ("evil", "humorous")),
        ("all", None),
        (["all"], None),
    ],
)
def test_the_key_becomes_the_samples_ignore(ignore: object, traits: tuple[str, ...] | None) -> None:
    sample = record_to_sample(_with({"ignore": ignore, "reason": f"  {REASON} "}), source="d.jsonl", line=3)
    assert sample.ignore == InlineIgnore(traits, REASON)


@pytest.mark.parametrize(
    "base",
    [
        PLAIN,
        {
            "messages": [
                {"role": "user", "content": "Play the villain."},
                {"role": "assistant", "content": "Ha."},
            ]
        },
        {"conversations": [{"from": "human", "value": "Play the villain."}, {"from": "gpt", "value": "Ha."}]},
        {"instruction": "Play the villain.", "output": "Ha."},
    ],
)
def test_the_key_is_metadata_in_every_format_not_screened_text(base: dict[str, Any]) -> None:
    without = record_to_sample(base, source="d.jsonl", line=1)
    marked = record_to_sample(_with({"ignore": ["evil"], "reason": REASON}, base), source="d.jsonl", line=1)
    assert marked.ignore is not None and without.ignore is None
    assert (marked.prompt, marked.response) == (without.prompt, without.response)
    assert marked.content_hash == without.content_hash
    texts = [m.content for m in marked.prompt] + [marked.response]
    assert not any("persona_lint" in t or REASON in t for t in texts)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"ignore": ["evil"]}, "'persona_lint.reason' is missing"),
        ({"ignore": ["evil"], "reason": "  "}, "'persona_lint.reason' is empty"),
        ({"ignore": ["evil"], "reason": 3}, "'persona_lint.reason' is a number, expected a string"),
        ({"reason": REASON}, "'persona_lint.ignore' is missing"),
        ({"ignore": "evil", "reason": REASON}, "'persona_lint.ignore' is a string, expected a list"),
        ({"ignore": [], "reason": REASON}, "'persona_lint.ignore' is an empty list"),
        ({"ignore": ["evil", 1], "reason": REASON}, "'persona_lint.ignore' holds a number"),
        ({"ignore": [""], "reason": REASON}, "'persona_lint.ignore' holds an empty string"),
        ({"ignore": ["evil"], "reasn": REASON}, "unknown key 'reasn'"),
        (["evil"], "'persona_lint' is a list, expected an object"),
        ("not json", "'persona_lint' is text that is not a JSON object"),
    ],
)
def test_a_malformed_key_names_the_line_problem_and_fix(value: object, expected: str) -> None:
    with pytest.raises(InputError) as caught:
        record_to_sample(_with(value), source="d.jsonl", line=7)
    message = str(caught.value)
    assert message.startswith("d.jsonl:7: ") and expected in message
    assert caught.value.fix is not None and '"persona_lint": {"ignore": ["evil"]' in caught.value.fix


def test_a_null_key_is_absent_as_any_null_column_is() -> None:
    assert record_to_sample(_with(None), source="d.csv", line=2).ignore is None


def test_csv_holds_the_key_as_json_text(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "response", "persona_lint"])
        writer.writerow(["Hi", "Hello", json.dumps({"ignore": "all", "reason": REASON})])
        writer.writerow(["Hi", "Bye", ""])
    samples = [s for s in iter_dataset([str(path)]) if isinstance(s, Sample)]
    assert [s.ignore for s in samples] == [InlineIgnore(None, REASON), None]


def test_scan_records_where_each_trait_is_first_ignored_and_skip_invalid_keeps_bad_keys(
    tmp_path: Path,
) -> None:
    path = tmp_path / "d.jsonl"
    rows = [
        PLAIN,
        _with({"ignore": ["evil"], "reason": REASON}),
        _with({"ignore": ["humorous", "evil"], "reason": REASON}),
        _with({"ignore": "all", "reason": REASON}),
        _with({"ignore": ["evil"]}),
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(InputError, match=r"d\.jsonl:5: 'persona_lint\.reason' is missing"):
        scan_dataset([str(path)])
    scan = scan_dataset([str(path)], skip_invalid=True)
    assert scan.ignored_traits == {"evil": ("d.jsonl", 2), "humorous": ("d.jsonl", 3)}
    assert [(r.line, r.problem) for r in scan.invalid] == [(5, "'persona_lint.reason' is missing")]
    assert isinstance(scan.invalid[0], InvalidRecord)


def test_an_unknown_trait_names_the_record_the_bad_name_the_known_ones_and_the_closest() -> None:
    with pytest.raises(InputError) as caught:
        check_ignored_traits({"evil": ("a.jsonl", 2), "evl": ("a.jsonl", 9)}, ["humorous", "evil"])
    assert str(caught.value) == (
        "a.jsonl:9: 'persona_lint.ignore' names the unknown trait 'evl'. Did you mean 'evil'? "
        'Fix: use trait names from: evil, humorous; or "all".'
    )
    check_ignored_traits({"evil": ("a.jsonl", 2)}, ["evil"])  # known: no error


def test_suppression_marks_only_the_traits_it_names() -> None:
    evil = Finding("persona/evil", "error", "sample", "d.jsonl", 3, "m", "evil", content_hash="h")
    funny = Finding("persona/humorous", "warning", "sample", "d.jsonl", 3, "m", "humorous", content_hash="h")
    ignore = InlineIgnore(("evil",), REASON)
    assert suppress_in_source(evil, ignore).justification == REASON
    assert suppress_in_source(evil, ignore).suppressed_in_source
    assert suppress_in_source(funny, ignore) == funny
    assert suppress_in_source(funny, InlineIgnore(None, REASON)).baselined


def test_the_spool_keeps_a_samples_ignore() -> None:
    spool = SampleSpool()
    prompt = (Message("user", "hi"),)
    scores = [
        SampleScore(
            Sample("a.jsonl", 1, prompt, "yo", InlineIgnore(("evil",), REASON)), 0, "y", False, False, ()
        ),
        SampleScore(Sample("a.jsonl", 2, prompt, "yo", InlineIgnore(None, REASON)), 1, "y", False, False, ()),
        SampleScore(Sample("a.jsonl", 3, prompt, "yo"), 2, "y", False, False, ()),
    ]
    spool.extend(scores)
    assert [s.sample.ignore for s in spool] == [s.sample.ignore for s in scores]
    assert list(spool) == scores
