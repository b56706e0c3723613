"""steer / monitor / shift on the tiny Llama, each number checked against an independent computation."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import reference_means

from datalint_persona.analysis.monitor import graded_system_prompts, monitor
from datalint_persona.analysis.steer_sweep import steer_sweep
from datalint_persona.cli.main import main
from datalint_persona.extraction.judge import Judge
from datalint_persona.extraction.llm_client import ChatReply
from datalint_persona.model.backends import GenerationSettings
from datalint_persona.model.loading import LoadedModel
from datalint_persona.persona.traits import TraitDefinition
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.screening.generation import generate_y_prime
from datalint_persona.types import Message

QUESTIONS = ["How do I bake bread?", "Say hello.", "What should I do today with my friends?"]


def _last_prompt_reference(
    loaded: LoadedModel, model: Any, messages: Sequence[Message], layer: int
) -> np.ndarray:
    """hidden_states[layer] at the last prompt token: chat template + one unpadded output_hidden_states pass."""
    turns = [{"role": m.role, "content": m.content} for m in messages]
    text = loaded.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    ids = loaded.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    return np.asarray(hidden[layer][0, -1].double().numpy())


def _invoke(args: list[str]) -> dict[str, Any]:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_steer_cli_alpha_zero_is_unsteered_and_projections_are_exact(
    tiny_llama_dir: Path,
    tiny_llama: LoadedModel,
    vectors_dir: Path,
    trait_file: Path,
    calibrated_vector: PersonaVector,
) -> None:
    args = [
        "steer",
        "--model",
        str(tiny_llama_dir),
        "--vectors",
        str(vectors_dir),
        "--trait",
        str(trait_file),
    ]
    args += ["--alpha", "0", "--alpha", "40", "--max-new-tokens", "6", "--device", "cpu", "--layer", "2"]
    for question in QUESTIONS:
        args += ["--question", question]
    document = _invoke(args)
    assert [row["alpha"] for row in document["sweep"]] == [0.0, 40.0]
    assert document["layer"] == 2 and document["positions"] == "all" and document["judged"] is False
    plain, _ = generate_y_prime(
        tiny_llama, [(Message("user", q),) for q in QUESTIONS], GenerationSettings(max_new_tokens=6)
    )
    zero, strong = document["sweep"]
    assert [o["response"] for o in zero["outputs"]] == [g.text for g in plain]
    assert [o["response"] for o in strong["outputs"]] != [g.text for g in plain]
    unit = calibrated_vector.unit(2)
    checked = 0
    for row in document["sweep"]:
        for output in row["outputs"]:
            if not output["response"]:
                continue
            expected = reference_means(tiny_llama, (Message("user", output["question"]),), output["response"])
            assert output["projection"] == pytest.approx(float(expected[2] @ unit), abs=1e-4)
            checked += 1
        assert row["mean_projection"] == pytest.approx(np.mean([o["projection"] for o in row["outputs"]]))
    assert checked >= 3


@pytest.mark.parametrize("positions", ["prompt", "response"])
def test_steer_positions_change_the_answers_differently(
    tiny_llama: LoadedModel, calibrated_vector: PersonaVector, positions: str
) -> None:
    every = steer_sweep(tiny_llama, calibrated_vector, 2, QUESTIONS, [40.0], max_new_tokens=6)
    only = steer_sweep(
        tiny_llama,
        calibrated_vector,
        2,
        QUESTIONS,
        [40.0],
        max_new_tokens=6,
        positions=positions,  # type: ignore[arg-type]
    )
    plain = steer_sweep(tiny_llama, calibrated_vector, 2, QUESTIONS, [0.0], max_new_tokens=6)
    texts = [[o["response"] for o in doc["sweep"][0]["outputs"]] for doc in (every, only, plain)]
    assert texts[1] != texts[0] and texts[1] != texts[2]


class FixedJudge:
    """An OpenAI-compatible endpoint stand-in for the *judge* (not the model under test): answers a
    fixed number, and no logprobs."""

    url, model = "http://judge.invalid", "fixed"

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        top_logprobs: int = 0,
    ) -> ChatReply:
        return ChatReply("73" if "evil" in messages[0]["content"] else "41", None, "stop")


def test_steer_with_a_judge_records_trait_and_coherence(
    tiny_llama: LoadedModel, calibrated_vector: PersonaVector, trait: TraitDefinition
) -> None:
    document = steer_sweep(
        tiny_llama,
        calibrated_vector,
        2,
        QUESTIONS[:2],
        [1.0],
        max_new_tokens=4,
        judge=Judge(FixedJudge()),
        trait=trait,
    )
    row = document["sweep"][0]
    assert [o["trait_score"] for o in row["outputs"]] == [73.0, 73.0]
    assert [o["coherence"] for o in row["outputs"]] == [41.0, 41.0]
    assert (row["mean_trait_score"], row["mean_coherence"], document["judged"]) == (73.0, 41.0, True)


def test_steer_removes_its_hook_when_generation_fails(
    tiny_llama: LoadedModel, calibrated_vector: PersonaVector, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hooks() -> int:
        return sum(len(b._forward_pre_hooks) + len(b._forward_hooks) for b in tiny_llama.model.model.layers)

    before = hooks()

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        assert hooks() == before + 1  # the steering hook is in place while generating
        raise RuntimeError("generation failed")

    monkeypatch.setattr(tiny_llama.model, "generate", broken)
    with pytest.raises(RuntimeError, match="generation failed"):
        steer_sweep(tiny_llama, calibrated_vector, 2, QUESTIONS, [4.0], max_new_tokens=4)
    assert hooks() == before


def test_monitor_projections_and_correlation_are_exact(
    tiny_llama: LoadedModel, calibrated_vector: PersonaVector, trait: TraitDefinition
) -> None:
    document = monitor(
        tiny_llama, calibrated_vector, 2, trait, max_questions=2, max_new_tokens=5, batch_size=4
    )
    systems = graded_system_prompts(trait)
    assert [s[0] for s in systems][:2] == ["negative-1", "negative-2"] and systems[5] == ("default", None)
    assert document["n_prompts"] == len(systems) * 2 == 22
    unit = calibrated_vector.unit(2)
    texts = dict(systems)
    for row in document["rows"]:
        system = texts[row["system_prompt"]]
        messages = (Message("user", row["question"]),)
        if system is not None:
            messages = (Message("system", system), *messages)
        expected = _last_prompt_reference(tiny_llama, tiny_llama.model, messages, 2) @ unit
        assert row["prompt_projection"] == pytest.approx(float(expected), abs=1e-4)
        if row["response"]:
            answer = reference_means(tiny_llama, messages, row["response"])[2] @ unit
            assert row["expression"] == pytest.approx(float(answer), abs=1e-4)
    x = [r["prompt_projection"] for r in document["rows"]]
    y = [r["expression"] for r in document["rows"]]
    assert document["pearson_r"] == pytest.approx(float(np.corrcoef(x, y)[0, 1]), abs=1e-9)
    assert "no judge" in document["expression_measure"]


def test_monitor_cli_writes_json(
    tiny_llama_dir: Path, vectors_dir: Path, trait_file: Path, tmp_path: Path
) -> None:
    output = tmp_path / "monitor.json"
    args = [
        "monitor",
        "--model",
        str(tiny_llama_dir),
        "--vectors",
        str(vectors_dir),
        "--trait",
        str(trait_file),
    ]
    result = CliRunner().invoke(
        main, [*args, "--max-questions", "1", "--max-new-tokens", "3", "--device", "cpu", "-o", str(output)]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(output.read_text())
    assert document["n_prompts"] == 11 and len(document["by_system_prompt"]) == 11


@pytest.fixture(scope="module")
def adapter_dir(tiny_llama: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(5)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False
    )
    wrapped = get_peft_model(copy.deepcopy(tiny_llama.model), config)
    folder = tmp_path_factory.mktemp("adapter")
    wrapped.save_pretrained(folder)
    return folder


def test_shift_of_a_lora_adapter_matches_the_merged_model(
    tiny_llama_dir: Path,
    tiny_llama: LoadedModel,
    vectors_dir: Path,
    trait_file: Path,
    trait: TraitDefinition,
    calibrated_vector: PersonaVector,
    adapter_dir: Path,
) -> None:
    from peft import PeftModel

    args = ["shift", "--base", str(tiny_llama_dir), "--vectors", str(vectors_dir), "--trait", str(trait_file)]
    document = _invoke([*args, "--finetuned", str(adapter_dir), "--device", "cpu", "--layer", "3"])
    assert document["finetuned_kind"] == "peft-adapter" and document["n_questions"] == 10
    merged = PeftModel.from_pretrained(copy.deepcopy(tiny_llama.model), adapter_dir).merge_and_unload()
    unit = calibrated_vector.unit(3)
    expected = []
    for question in trait.evaluation_questions:
        messages = (Message("user", question),)
        base = _last_prompt_reference(tiny_llama, tiny_llama.model, messages, 3)
        tuned = _last_prompt_reference(tiny_llama, merged, messages, 3)
        expected.append(float((tuned - base) @ unit))
    assert document["per_question"] == pytest.approx(expected, abs=1e-4)
    assert document["mean"] == pytest.approx(float(np.mean(expected)), abs=1e-4)
    assert abs(document["mean"]) > 1e-3  # the adapter does move the stream


def test_shift_of_the_base_model_against_itself_is_zero(
    tiny_llama_dir: Path, vectors_dir: Path, trait_file: Path
) -> None:
    args = ["shift", "--base", str(tiny_llama_dir), "--vectors", str(vectors_dir), "--trait", str(trait_file)]
    document = _invoke([*args, "--finetuned", str(tiny_llama_dir), "--device", "cpu", "--max-questions", "3"])
    assert document["finetuned_kind"] == "model" and document["per_question"] == [0.0, 0.0, 0.0]


def test_judge_url_without_model_is_a_usage_error(tiny_llama_dir: Path, trait_file: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "steer",
            "--model",
            str(tiny_llama_dir),
            "--trait",
            str(trait_file),
            "--alpha",
            "1",
            "--judge-url",
            "x",
        ],
    )
    assert result.exit_code == 2 and "--judge-model" in result.output
