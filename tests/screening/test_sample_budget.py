"""--max-sample-tokens: a huge sample is cut early (by characters, then by tokens), the run names it
at once, before the model loads, and its scores equal those of the same sample cut by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import TRAIT, reference_means

from datalint_persona.cli.main import main
from datalint_persona.errors import ConfigError
from datalint_persona.model.chat import encode_pair, render_prompt
from datalint_persona.model.loading import LoadedModel
from datalint_persona.model.text_cut import char_bound, chars_per_token
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.reporters.json_report import render_json
from datalint_persona.screening.engine import screen
from datalint_persona.screening.sample_budget import sample_token_budget
from datalint_persona.settings import ScreenOptions
from datalint_persona.types import Message
from screening.test_engine import _options, _unit, write_jsonl

BUDGET = 64
ANSWER_BUDGET = 320
MAX_NEW = 8
MEGABYTE = 1_000_000


def _megabyte_text() -> str:
    """About a megabyte of varied text (so that it tokenizes like prose, not one repeated token)."""
    parts, size, i = [], 0, 0
    while size < MEGABYTE:
        part = f"fact {i} about the quick brown fox. "
        parts.append(part)
        size, i = size + len(part), i + 1
    return "".join(parts)


HUGE = _megabyte_text()


def _tokens(loaded: LoadedModel, text: str) -> int:
    return len(loaded.tokenizer(text, add_special_tokens=False)["input_ids"])


def _hand_cut_prompt(loaded: LoadedModel, text: str, budget: int) -> tuple[Message, ...]:
    """The longest tail of the question whose rendered prompt fits ``budget`` tokens, by search."""
    start = len(text) - 20 * budget  # far more than ``budget`` tokens of this text
    assert _tokens(loaded, render_prompt(loaded.tokenizer, (Message("user", text[start:]),))) > budget
    while _tokens(loaded, render_prompt(loaded.tokenizer, (Message("user", text[start:]),))) > budget:
        start += 1
    return (Message("user", text[start:]),)


def _mean_within(loaded: LoadedModel, prompt: tuple[Message, ...], response: str, limit: int) -> np.ndarray:
    """Every layer's mean response activation over the first ``limit`` tokens of the whole x + y,
    tokenized uncut (no character cut): what keeping a response's head means."""
    turns = [{"role": m.role, "content": m.content} for m in prompt]
    prompt_text = loaded.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    full_text = loaded.tokenizer.apply_chat_template(
        [*turns, {"role": "assistant", "content": response}], tokenize=False
    )
    start, end = len(prompt_text), len(prompt_text) + len(response)
    encoding = loaded.tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    mask = np.array([a < end and b > start for a, b in encoding["offset_mapping"][:limit]])
    ids = torch.tensor([encoding["input_ids"][:limit]])
    with torch.no_grad():
        hidden = loaded.model(input_ids=ids, output_hidden_states=True).hidden_states
    return np.stack([h[0].double().numpy()[mask].mean(axis=0) for h in hidden])


def test_the_character_bound_holds_more_tokens_than_the_budget(tiny_llama: LoadedModel) -> None:
    # No vocabulary string is longer than chars_per_token, so a cut at char_bound characters keeps
    # more than the budget's tokens, whatever the text (here: the text the longest tokens make).
    tokenizer = tiny_llama.tokenizer
    longest = chars_per_token(tokenizer)
    assert longest == max(len(t) for t in tokenizer.get_vocab())
    decoded = [tokenizer.decode([i]) for i in range(len(tokenizer))]
    assert max(len(t) for t in decoded) <= longest  # a token's text is never longer than its string
    dense = max(decoded, key=len) * (char_bound(tokenizer, BUDGET) // longest + 1)
    assert _tokens(tiny_llama, dense[: char_bound(tokenizer, BUDGET)]) > BUDGET


def test_a_megabyte_prompt_scores_as_the_same_prompt_cut_by_hand(
    tiny_llama: LoadedModel, vectors_dir: Path, tmp_path: Path
) -> None:
    data = write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"prompt": "Name a food.", "response": "Bread."},
            {"prompt": HUGE, "response": "Bread."},
            {"prompt": "Tell me about foxes.", "response": HUGE},
        ],
    )
    options = _options(Path(tiny_llama.spec.directory), vectors_dir, tmp_path, cache_dir=None)
    result = screen(
        [str(data)], options, max_new_tokens=MAX_NEW, max_sample_tokens=BUDGET, loaded_model=tiny_llama
    )
    short_score, huge_score, long_answer = result.samples
    assert huge_score.sample.prompt == (Message("user", HUGE),)  # the report keeps the data as it is
    assert (short_score.truncated, huge_score.truncated, long_answer.truncated) == (False, True, True)
    assert result.settings.max_tokens == BUDGET
    report = json.loads(render_json(result))
    assert [s["truncated"] for s in report["samples"]] == [False, True, True]
    assert report["verdict"]["truncated_samples"] == 2
    # The huge answer keeps its head: its y is scored over the first BUDGET tokens of the uncut x + y.
    [answer_trait] = long_answer.scores
    answer_unit = _unit(PersonaVector.load(vectors_dir / f"{TRAIT}.safetensors"), answer_trait.layer)
    by_hand_y = _mean_within(tiny_llama, (Message("user", "Tell me about foxes."),), HUGE, BUDGET)
    assert answer_trait.projection_y == pytest.approx(
        float(by_hand_y[answer_trait.layer] @ answer_unit), abs=1e-4
    )
    # The same sample, cut by hand to the prompt budget (BUDGET less y'), screened uncut.
    cut = _hand_cut_prompt(tiny_llama, HUGE, BUDGET - MAX_NEW)
    by_hand = write_jsonl(tmp_path / "by-hand.jsonl", [{"prompt": cut[0].content, "response": "Bread."}])
    [hand_score] = screen([str(by_hand)], options, max_new_tokens=MAX_NEW, loaded_model=tiny_llama).samples
    assert not hand_score.truncated
    assert huge_score.y_prime == hand_score.y_prime  # y' answered the same cut prompt
    [huge_trait], [hand_trait] = huge_score.scores, hand_score.scores
    assert huge_trait.delta_p == pytest.approx(hand_trait.delta_p, abs=1e-6)
    # And the projection of y against a plain forward pass over the hand-cut prompt.
    unit = _unit(PersonaVector.load(vectors_dir / f"{TRAIT}.safetensors"), huge_trait.layer)
    assert huge_trait.projection_y == pytest.approx(
        float(reference_means(tiny_llama, cut, "Bread.")[huge_trait.layer] @ unit), abs=1e-4
    )


def test_a_megabyte_response_keeps_its_head(tiny_llama: LoadedModel) -> None:
    # A budget far beyond the template's default system turn, so that most of it is the answer's.
    prompt = (Message("user", "Tell me about foxes."),)
    pair = encode_pair(tiny_llama.tokenizer, prompt, HUGE, max_tokens=ANSWER_BUDGET)
    assert pair.truncated and len(pair.input_ids) == ANSWER_BUDGET
    # The whole x + y tokenized uncut: its first ANSWER_BUDGET tokens, and which are the response's.
    turns = [{"role": "user", "content": prompt[0].content}, {"role": "assistant", "content": HUGE}]
    full_text = tiny_llama.tokenizer.apply_chat_template(turns, tokenize=False)
    assert (
        list(pair.input_ids)
        == tiny_llama.tokenizer(full_text, add_special_tokens=False)["input_ids"][:ANSWER_BUDGET]
    )
    expected = _mean_within(tiny_llama, prompt, HUGE, ANSWER_BUDGET)
    ids = torch.tensor([pair.input_ids])
    with torch.no_grad():
        hidden = tiny_llama.model(input_ids=ids, output_hidden_states=True).hidden_states
    mask = np.array(pair.response_mask)
    got = np.stack([h[0].double().numpy()[mask].mean(axis=0) for h in hidden])
    assert np.allclose(got, expected, atol=1e-5)


def test_short_samples_are_untouched_by_the_default_budget(
    tiny_llama: LoadedModel, vectors_dir: Path, tmp_path: Path
) -> None:
    records = [
        {"prompt": "Name a food.", "response": "Bread."},
        {"prompt": "Hi!", "response": "Hello, friend."},
    ]
    data = write_jsonl(tmp_path / "train.jsonl", records)
    options = _options(Path(tiny_llama.spec.directory), vectors_dir, tmp_path, cache_dir=None)
    default = screen([str(data)], options, max_new_tokens=MAX_NEW, loaded_model=tiny_llama)
    # The cut before this option: the model's context.
    context = tiny_llama.context_length
    before = screen(
        [str(data)], options, max_new_tokens=MAX_NEW, max_sample_tokens=context, loaded_model=tiny_llama
    )
    assert default.settings.max_tokens == min(2048, context)
    for new, old in zip(default.samples, before.samples, strict=True):
        assert not new.truncated
        assert new.y_prime == old.y_prime
        assert [s.delta_p for s in new.scores] == [s.delta_p for s in old.scores]
    assert sample_token_budget(ScreenOptions(), 8192) == 2048  # the embedded model's context
    assert sample_token_budget(ScreenOptions(), 512) == 512


def test_the_budget_is_part_of_the_cache_keys(
    tiny_llama: LoadedModel, vectors_dir: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", [{"prompt": HUGE[-20_000:], "response": "Bread."}])
    cached = _options(Path(tiny_llama.spec.directory), vectors_dir, tmp_path)
    uncached = _options(Path(tiny_llama.spec.directory), vectors_dir, tmp_path, cache_dir=None)
    screen([str(data)], cached, max_new_tokens=MAX_NEW, max_sample_tokens=BUDGET, loaded_model=tiny_llama)
    again = screen(
        [str(data)], cached, max_new_tokens=MAX_NEW, max_sample_tokens=2 * BUDGET, loaded_model=tiny_llama
    )
    fresh = screen(
        [str(data)], uncached, max_new_tokens=MAX_NEW, max_sample_tokens=2 * BUDGET, loaded_model=tiny_llama
    )
    [(a, f)] = zip(again.samples, fresh.samples, strict=True)
    assert a.y_prime == f.y_prime
    assert [s.delta_p for s in a.scores] == pytest.approx([s.delta_p for s in f.scores], abs=1e-9)
    assert [s.projection_y for s in a.scores] != pytest.approx(
        [
            s.projection_y
            for s in screen(
                [str(data)],
                uncached,
                max_new_tokens=MAX_NEW,
                max_sample_tokens=BUDGET,
                loaded_model=tiny_llama,
            )
            .samples[0]
            .scores
        ],
        abs=1e-9,
    )  # the two cuts do give different numbers, so a reused entry would show


def test_the_warning_names_file_and_line_before_the_model_loads(
    tiny_llama_dir: Path, vectors_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import datalint_persona.model.loading as loading

    records = [{"prompt": "Hi", "response": "Hello."}] * 2 + [{"prompt": HUGE, "response": "Bread."}] * 5
    data = write_jsonl(tmp_path / "train.jsonl", records)

    def loading_model(*args: Any, **kwargs: Any) -> Any:
        print("LOADING THE MODEL", file=__import__("sys").stderr)
        raise KeyboardInterrupt  # the warning must be out by now; the run stops here

    monkeypatch.setattr(loading, "load_model", loading_model)
    options = _options(tiny_llama_dir, vectors_dir, tmp_path, cache_dir=None)
    with pytest.raises(KeyboardInterrupt):
        screen([str(data)], options)
    err = capsys.readouterr().err
    [warning] = [line for line in err.splitlines() if "sample budget" in line]
    assert warning.startswith("persona-lint: warning: train.jsonl: 5 sample(s) longer than the 2048-token")
    about = f"(about {(len(HUGE) + 6) // 4} tokens)"
    assert f"train.jsonl:3 {about}, train.jsonl:4 {about}, train.jsonl:5 {about} and 2 more" in warning
    assert "--max-sample-tokens" in warning
    assert err.index(warning) < err.index("LOADING THE MODEL")


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "many"])
def test_a_bad_budget_on_the_command_line_exits_2_naming_the_option(value: str, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "Hi", "response": "Hello."}])
    result = CliRunner().invoke(main, [str(data), "--max-sample-tokens", value])
    assert result.exit_code == 2
    assert "--max-sample-tokens" in result.output


def test_a_budget_above_the_context_exits_2_naming_the_option(
    tiny_llama_dir: Path, vectors_dir: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "Hi", "response": "Hello."}])
    argv = [str(data), "--model", str(tiny_llama_dir), "--vectors", str(vectors_dir), "--no-cache"]
    result = CliRunner().invoke(main, [*argv, "--device", "cpu", "--max-sample-tokens", "100000"])
    assert result.exit_code == 2, result.output
    assert "--max-sample-tokens 100000 is more than the model's context of 512 tokens" in result.output


@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_a_bad_budget_in_the_api_or_config_is_refused_by_name(
    value: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"max_sample_tokens \(--max-sample-tokens\)"):
        ScreenOptions(max_sample_tokens=value)
    (tmp_path / ".persona-lint.yaml").write_text(f"max-sample-tokens: {json.dumps(value)}\n")
    data = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "Hi", "response": "Hello."}])
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [str(data)])
    assert result.exit_code == 2
    assert "max-sample-tokens" in result.output
