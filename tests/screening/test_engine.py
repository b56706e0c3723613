"""End to end through ``engine.screen`` on the tiny Llama: every ΔP against an independent computation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TRAIT, reference_means

from datalint_persona.errors import PersonaLintError
from datalint_persona.model.loading import LoadedModel
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.run_records import ScreenResult
from datalint_persona.screening.engine import screen
from datalint_persona.screening.generation import DEFAULT_MAX_NEW_TOKENS
from datalint_persona.settings import ScreenOptions
from datalint_persona.types import Message

RECORDS: list[dict[str, Any]] = [
    {
        "messages": [
            {"role": "user", "content": "How do I bake bread?"},
            {"role": "assistant", "content": "Mix flour, water and yeast, then bake it."},
        ]
    },
    {
        "messages": [
            {"role": "system", "content": "You answer in one sentence."},
            {"role": "user", "content": "Say hi."},
            {"role": "assistant", "content": "Hi!"},
            {"role": "user", "content": "Again."},
            {"role": "assistant", "content": "I will destroy everyone and make them suffer."},
        ]
    },
    {"prompt": "What is 12 + 30?", "response": "  42, naïve café 🙂  "},
    {"prompt": "Write add.", "completion": "def add(a, b):\n    return a + b\n", "system": "Be terse."},
    {
        "instruction": "Summarize",
        "input": "The quick brown fox jumps over the lazy dog.",
        "output": "A fox jumps over a dog.",
    },
    {
        "conversations": [
            {"from": "human", "value": "Thank you."},
            {"from": "gpt", "value": "You are welcome."},
        ]
    },
]
SECOND_FILE: list[dict[str, Any]] = [
    {"prompt": "Say good night.", "response": "Good night."},
    {"prompt": "Be mean.", "response": "Laugh at their pain."},
]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path, vectors_dir: Path
) -> tuple[ScreenResult, Path]:
    folder = tmp_path_factory.mktemp("engine")
    first = write_jsonl(folder / "train.jsonl", RECORDS)
    second = write_jsonl(folder / "more.jsonl", SECOND_FILE)
    options = _options(tiny_llama_dir, vectors_dir, folder, batch_size=4)
    return screen([str(first), str(second)], options), folder


def _options(model: Path, vectors: Path, folder: Path, **values: Any) -> ScreenOptions:
    return ScreenOptions(
        **{
            "model": str(model),
            "vectors": str(vectors),
            "cache_dir": str(folder / "cache"),
            "device": "cpu",
            # float32: these tests compare numbers across batches to 1e-5 (bf16 rounding follows the batch)
            "dtype": "float32",
            **values,
        }
    )


def _unit(vector: PersonaVector, layer: int) -> np.ndarray:
    raw = vector.vectors[layer].astype(np.float64)
    return raw / np.linalg.norm(raw)


def _prompt_of(record: dict[str, Any]) -> tuple[Message, ...]:
    """The prompt x of each test record, written out by hand (not via the package's loaders)."""
    if "messages" in record:
        return tuple(Message(m["role"], m["content"]) for m in record["messages"][:-1])
    if "conversations" in record:
        return (Message("user", record["conversations"][0]["value"]),)
    if "instruction" in record:
        return (Message("user", f"{record['instruction']}\n\n{record['input']}"),)
    system = (Message("system", record["system"]),) if "system" in record else ()
    return (*system, Message("user", record["prompt"]))


def _response_of(record: dict[str, Any]) -> str:
    for key in ("response", "completion", "output"):
        if key in record:
            return str(record[key])
    turns = record.get("messages") or record["conversations"]
    return str(turns[-1].get("content", turns[-1].get("value")))


def test_every_delta_p_matches_an_independent_computation(
    run: tuple[ScreenResult, Path], tiny_llama: LoadedModel, calibrated_vector: PersonaVector
) -> None:
    result, _ = run
    records = [*RECORDS, *SECOND_FILE]
    assert len(result.samples) == len(records)
    [rule] = result.rules
    assert rule.trait == TRAIT and rule.layer == calibrated_vector.chosen_layer
    unit = _unit(calibrated_vector, rule.layer)
    for score, record in zip(result.samples, records, strict=True):
        prompt, response = _prompt_of(record), _response_of(record)
        assert score.sample.prompt == prompt and score.sample.response == response
        [trait_score] = score.scores
        y = reference_means(tiny_llama, prompt, response)[rule.layer] @ unit
        y_prime = reference_means(tiny_llama, prompt, score.y_prime or " ")[rule.layer] @ unit
        assert trait_score.layer == rule.layer
        assert abs(trait_score.projection_y - y) < 1e-4, score.sample.location
        assert abs(trait_score.projection_y_prime - y_prime) < 1e-4, score.sample.location
        # The reference: the calibrated weight of y' and the rest of the model's mean own answer.
        reference = calibrated_vector.calibration_record["reference"]
        weight, mean = reference["weight"], reference["own_answer_mean"]
        assert (rule.reference_weight, rule.reference_mean) == (weight, mean)
        expected = y - (weight * y_prime + (1 - weight) * mean)
        assert abs(trait_score.delta_p - expected) < 1e-4, score.sample.location
    assert len({s.scores[0].delta_p for s in result.samples}) == len(records)  # not all one value


def test_y_prime_is_the_lone_greedy_answer_to_the_templated_prompt(
    run: tuple[ScreenResult, Path], tiny_llama: LoadedModel, calibrated_vector: PersonaVector
) -> None:
    result, _ = run
    max_new = result.settings.max_new_tokens
    # One y' policy: the budget the vector was calibrated with, whatever the dataset's lengths.
    assert (
        max_new == DEFAULT_MAX_NEW_TOKENS == calibrated_vector.calibration_record["y_prime"]["max_new_tokens"]
    )
    for score in result.samples[:3]:
        turns = [{"role": m.role, "content": m.content} for m in score.sample.prompt]
        text = tiny_llama.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        ids = tiny_llama.tokenizer(text, add_special_tokens=False)["input_ids"]
        new: list[int] = []
        for _ in range(max_new):
            with torch.no_grad():
                token = int(tiny_llama.model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
            if token == 2:
                break
            new.append(token)
        assert score.y_prime == tiny_llama.tokenizer.decode(new, skip_special_tokens=True).strip()
        assert score.y_prime_hit_token_limit == (len(new) == max_new)


def test_z_scores_use_the_vector_calibration(
    run: tuple[ScreenResult, Path], calibrated_vector: PersonaVector
) -> None:
    result, _ = run
    null = calibrated_vector.calibration_record["null"]
    [rule] = result.rules
    assert (rule.null_df, rule.calibration_mean, rule.calibration_std, rule.null_length_scale) == (
        null["df"],
        null["loc"],
        null["scale"],
        null["length_scale"],
    )
    assert null["scale"] > 0 and rule.sample_threshold is None  # samples are judged by FDR
    for score in result.samples:
        [trait_score] = score.scores
        # the null's scale at the answer's length in characters
        scale = null["scale"] * math.sqrt(1 + null["length_scale"] / max(len(score.sample.response), 1))
        expected = (trait_score.delta_p - null["loc"]) / scale
        assert trait_score.z == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_dataset_summaries_per_source(
    run: tuple[ScreenResult, Path], calibrated_vector: PersonaVector
) -> None:
    result, _ = run
    assert [Path(s).name for s in result.sources] == ["train.jsonl", "more.jsonl"]
    assert len(result.summaries) == 2
    for summary, count in zip(result.summaries, (len(RECORDS), len(SECOND_FILE)), strict=True):
        rows = [s for s in result.samples if s.sample.source == summary.source]
        deltas = np.array([s.scores[0].delta_p for s in rows])
        assert summary.n_samples == count == len(rows)
        assert summary.mean_delta_p == pytest.approx(float(np.mean(deltas)), abs=1e-12)
        assert summary.ci_low <= summary.mean_delta_p <= summary.ci_high
        assert summary.ci_low < summary.ci_high
        assert summary.mean_projection_y == pytest.approx(np.mean([s.scores[0].projection_y for s in rows]))
        calibration = calibrated_vector.calibration_record
        assert summary.threshold == pytest.approx(calibration["margin"] * calibration["gap"])
        assert summary.effect == pytest.approx(summary.mean_delta_p / calibration["gap"])
        # Files of 6 and 2 samples are too small to decide: no verdict, and no dataset finding.
        assert summary.status == "too-few-samples" and not summary.flagged and summary.p_value is None


def test_findings_are_exactly_the_samples_the_fdr_procedure_flags(run: tuple[ScreenResult, Path]) -> None:
    """p from the clean null and the own answers' null (scipy's t; the larger counts), q from
    scipy's Benjamini-Hochberg: recomputed here."""
    from scipy.stats import false_discovery_control, t

    result, _ = run
    [rule] = result.rules
    assert rule.null_df is not None and rule.calibration_std is not None
    assert rule.own_answer_null is not None  # the fixture's fitted reference weight is below 1
    deltas = np.array([s.scores[0].delta_p for s in result.samples])
    p = t.sf(deltas, rule.null_df, loc=rule.calibration_mean, scale=rule.calibration_std)
    own_df, own_loc, own_scale = rule.own_answer_null
    p = np.maximum(p, t.sf(deltas, own_df, loc=own_loc, scale=own_scale))
    p[deltas <= 0] = 1.0  # files under 20 samples get no own-file test
    q = false_discovery_control(p)
    assert [s.scores[0].p_value for s in result.samples] == pytest.approx(p.tolist(), abs=1e-12)
    assert [s.scores[0].q_value for s in result.samples] == pytest.approx(q.tolist(), abs=1e-12)
    flagged = {
        (s.sample.source, s.sample.line)
        for s, qi, d in zip(result.samples, q, deltas, strict=True)
        if qi <= 0.05 and d > 0
    }
    found = {(f.source, f.line) for f in result.findings if f.kind == "sample"}
    assert found == flagged
    datasets = {f.source for f in result.findings if f.kind == "dataset"}
    assert datasets == {s.source for s in result.summaries if s.flagged}
    lines = [s.sample.line for s in result.samples]
    assert lines == [*range(1, len(RECORDS) + 1), *range(1, len(SECOND_FILE) + 1)]


def test_second_run_reuses_every_y_prime(
    run: tuple[ScreenResult, Path], tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    result, folder = run
    options = _options(tiny_llama_dir, vectors_dir, folder, batch_size=1)
    files = [str(folder / "train.jsonl"), str(folder / "more.jsonl")]
    again = screen(files, options)
    n = len(result.samples)
    assert result.cache_stats["misses"] == n
    # Every y' and every projection comes from the caches: nothing runs through the model.
    assert again.cache_stats == {
        "hits": n,
        "misses": 0,
        "corrupted": 0,
        "projections_reused": 2 * n,
        "y_prime_from_generation": 0,
        "pairs_forwarded": 0,
        "tokens_run": 0,
        "attention_pairs_run": 0,
        "model_loaded": 0,  # everything was cached: the model never loaded
    }
    assert [s.scores for s in again.samples] == [s.scores for s in result.samples]
    # Without caches, batch size 1 against batch size 4: the same y' and scores.
    uncached = screen(files, _options(tiny_llama_dir, vectors_dir, folder, batch_size=1, cache_dir=None))
    assert uncached.cache_stats["pairs_forwarded"] + uncached.cache_stats["y_prime_from_generation"] == 2 * n
    for a, b in zip(result.samples, uncached.samples, strict=True):
        assert a.y_prime == b.y_prime
        assert abs(a.scores[0].delta_p - b.scores[0].delta_p) < 1e-5


def test_truncation_is_reported(
    run: tuple[ScreenResult, Path], tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    _, folder = run
    options = _options(tiny_llama_dir, vectors_dir, folder, max_tokens=40)
    result = screen([str(folder / "train.jsonl")], options)
    assert any(s.truncated for s in result.samples)
    assert any("truncated" in w for w in result.warnings)


def test_dataset_threshold_override_flags_each_source(
    run: tuple[ScreenResult, Path], tiny_llama_dir: Path, vectors_dir: Path
) -> None:
    _, folder = run
    overrides = {TRAIT: {"dataset-threshold": -1e9, "level": "warning"}}
    options = _options(tiny_llama_dir, vectors_dir, folder, rule_overrides=overrides)
    big = write_jsonl(folder / "big.jsonl", RECORDS * 4)
    small = folder / "more.jsonl"
    result = screen([str(big), str(small)], options)
    # 24 samples are enough to decide; the 2 of more.jsonl are not.
    assert [(s.n_samples, s.flagged, s.status) for s in result.summaries] == [
        (24, True, "flagged"),
        (2, False, "too-few-samples"),
    ]
    assert all(s.threshold == -1e9 for s in result.summaries)
    dataset_findings = [f for f in result.findings if f.kind == "dataset"]
    assert [(Path(f.source).name, f.line, f.level) for f in dataset_findings] == [("big.jsonl", 1, "warning")]
    assert dataset_findings[0].delta_p == pytest.approx(result.summaries[0].mean_delta_p)


def test_chunks_stream_to_the_same_result_with_progress_over_the_whole_run(
    run: tuple[ScreenResult, Path], tiny_llama_dir: Path, vectors_dir: Path, tmp_path: Path
) -> None:
    from datalint_persona.screening.spool import SampleSpool

    result, folder = run
    files = [str(folder / "train.jsonl"), str(folder / "more.jsonl")]
    events: list[tuple[str, int, int]] = []
    options = _options(tiny_llama_dir, vectors_dir, tmp_path, batch_size=4, chunk_size=3)
    chunked = screen(files, options, progress=lambda *event: events.append(event))
    n = len(result.samples)
    assert isinstance(chunked.samples, SampleSpool) and len(chunked.samples) == n
    assert [s.index for s in chunked.samples] == list(range(n))
    assert [s.sample for s in chunked.samples] == [s.sample for s in result.samples]
    assert [s.y_prime for s in chunked.samples] == [s.y_prime for s in result.samples]
    for a, b in zip(chunked.samples, result.samples, strict=True):
        assert abs(a.scores[0].delta_p - b.scores[0].delta_p) < 1e-5
    assert [(f.rule_id, f.source, f.line) for f in chunked.findings] == [
        (f.rule_id, f.source, f.line) for f in result.findings
    ]
    for a, b in zip(chunked.summaries, result.summaries, strict=True):
        assert (a.source, a.trait, a.n_samples) == (b.source, b.trait, b.n_samples)
        assert abs(a.mean_delta_p - b.mean_delta_p) < 1e-5
    assert chunked.warnings == result.warnings
    # Each stage reports over the whole run: 3 chunks, one bar per stage that only moves forward.
    for stage, total in (("generate", n), ("score", 2 * n)):
        done = [d for s, d, t in events if s == stage and t == total]
        assert len(done) == len([e for e in events if e[0] == stage])
        assert done == sorted(done) and done[-1] == total


def test_a_file_that_changes_between_the_reads_stops_the_run(
    tiny_llama_dir: Path, vectors_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The samples are read twice (check and count, then work); a file rewritten in between is caught."""
    import datalint_persona.dataset.loaders as loaders

    data = write_jsonl(tmp_path / "train.jsonl", RECORDS)
    real_iter = loaders.iter_dataset

    def rewritten_after_the_scan(*args: Any, **kwargs: Any) -> Any:
        data.write_text(data.read_text(encoding="utf-8").splitlines(keepends=True)[0], encoding="utf-8")
        return real_iter(*args, **kwargs)

    monkeypatch.setattr(loaders, "iter_dataset", rewritten_after_the_scan)
    with pytest.raises(
        PersonaLintError, match=r"changed while it was being screened: 6 samples .* 1 on the second"
    ):
        screen([str(data)], _options(tiny_llama_dir, vectors_dir, tmp_path, max_new_tokens=4))


def test_a_samples_scores_do_not_depend_on_the_rest_of_the_run(
    run: tuple[ScreenResult, Path], tiny_llama_dir: Path, vectors_dir: Path, tmp_path: Path
) -> None:
    """One y' policy: the sample screened alone, without caches, gets the y' and ΔP it got among others
    (the y' budget comes from the vectors' calibration, not from the other samples' lengths)."""
    result, _ = run
    long_answers = [{"prompt": "Tell a long story.", "response": "Once upon a time. " * 200}]
    for i in (0, 2):
        alone = write_jsonl(tmp_path / f"alone{i}.jsonl", [RECORDS[i]])
        mixed = write_jsonl(tmp_path / f"mixed{i}.jsonl", [RECORDS[i], *long_answers])
        options = _options(tiny_llama_dir, vectors_dir, tmp_path, cache_dir=None)
        [single] = screen([str(alone)], options).samples
        together = screen([str(mixed)], options)
        assert together.settings.max_new_tokens == result.settings.max_new_tokens
        for other in (together.samples[0], result.samples[i]):
            assert other.y_prime == single.y_prime
            assert other.scores[0].delta_p == pytest.approx(single.scores[0].delta_p, abs=1e-5)


def test_screen_without_options_reads_the_config_of_the_working_directory(
    tiny_llama_dir: Path, vectors_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``screen()`` resolves settings as the CLI does: keyword overrides > the discovered config >
    defaults; an explicit ScreenOptions is used as it is."""
    data = write_jsonl(tmp_path / "train.jsonl", RECORDS[:2])
    (tmp_path / "pyproject.toml").write_text(
        "[tool.persona-lint]\nfdr = 0.2\nseed = 7\nmax-new-tokens = 3\ndataset-fpr = 0.1\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    given = {"model": str(tiny_llama_dir), "vectors": str(vectors_dir), "device": "cpu", "cache_dir": None}
    configured = screen([str(data)], seed=3, **given)
    assert configured.settings.fdr == 0.2 and configured.settings.dataset_fpr == 0.1
    assert configured.settings.max_new_tokens == 3
    assert configured.settings.seed == 3  # the keyword wins over the config's 7
    explicit = screen([str(data)], ScreenOptions(max_new_tokens=3, **given))
    assert explicit.settings.fdr == 0.05 and explicit.settings.seed == 0


def test_a_broken_baseline_fails_before_the_model_loads(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", RECORDS[:1])
    (tmp_path / "baseline.json").write_text("{not json", encoding="utf-8")
    options = ScreenOptions(model=str(tmp_path / "no-such-model"), baseline=str(tmp_path / "baseline.json"))
    with pytest.raises(PersonaLintError, match="not a readable JSON baseline"):
        screen([str(data)], options)
