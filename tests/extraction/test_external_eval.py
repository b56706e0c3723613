"""The external evaluation: its statistics against sklearn and brute force, and the whole command
on the tiny model with a small external folder written here (the same file layout as the real one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TRAIT, reference_means
from sklearn.metrics import roc_auc_score

from datalint_persona.cli.main import main
from datalint_persona.extraction.external import (
    EXTERNAL_SETS,
    auroc_with_interval,
    clean_file_rates,
    contamination_rates,
    judge,
    paired_rate,
    split_of,
    split_records,
)
from datalint_persona.model.loading import LoadedModel
from datalint_persona.persona.traits import TraitDefinition
from datalint_persona.types import Message, RuleInfo, Sample, SampleScore


def rule(trait: str, level: str = "error") -> RuleInfo:
    return RuleInfo(
        f"persona/{trait}",
        trait,
        trait.title(),
        "",
        level,  # type: ignore[arg-type]
        3,
        None,
        None,
        "",
        calibration_mean=0.0,
        calibration_std=1.0,
        null_df=30.0,
        gap=4.0,
        margin=0.25,
    )


RULES = [rule("evil"), rule("humorous", "note")]


def test_split_is_by_id_and_stable(tmp_path: Path) -> None:
    ids = [f"record-{i}" for i in range(400)]
    assert 0.4 < np.mean([split_of(i) == "fit" for i in ids]) < 0.6
    path = tmp_path / "data.jsonl"
    path.write_text(
        "".join(json.dumps({"id": i, "x": n}) + "\n" for n, i in enumerate(ids)), encoding="utf-8"
    )
    test = split_records(path, "test")
    assert all(split_of(json.loads(line)["id"]) == "test" for line in test)
    assert len(test) + len(split_records(path, "fit")) == 400
    few = split_records(path, "test", limit=10, seed=3)
    assert len(few) == 10 and set(few) <= set(test) and few == split_records(path, "test", limit=10, seed=3)
    assert [json.loads(line)["x"] for line in few] == sorted(json.loads(line)["x"] for line in few)


def test_auroc_and_paired_rate_against_sklearn_and_counting() -> None:
    rng = np.random.default_rng(0)
    positive, negative = rng.normal(1.0, 1.0, 80), rng.normal(0.0, 1.0, 120)
    result = auroc_with_interval(positive, negative)
    assert result["auroc"] == pytest.approx(
        roc_auc_score(np.r_[np.ones(80), np.zeros(120)], np.r_[positive, negative])
    )
    assert result["low"] < result["auroc"] < result["high"]
    rejected, chosen = np.array([3.0, 1.0, 2.0, 5.0]), np.array([1.0, 2.0, 2.0, 0.0])
    paired = paired_rate(rejected, chosen)
    assert paired["rate"] == pytest.approx((1 + 0 + 0.5 + 1) / 4) and paired["n_pairs"] == 4


def test_clean_files_from_the_null_pass_and_the_gate_counts_error_levels_only() -> None:
    rng = np.random.default_rng(1)
    pool = rng.standard_t(30, size=(400, 2))
    rates = clean_file_rates(pool, RULES, sizes=(20, 200), repeats=40)
    assert set(rates) == {"20", "200"}
    for by_trait in rates.values():
        assert by_trait["evil"] <= 0.1 and by_trait["humorous"] <= 0.1 and by_trait["gate"] <= 0.2
    # A humorous (note) shift of the whole file is flagged, but the gate (error level) still passes.
    shifted = pool + np.array([0.0, 3.0])
    result = judge(shifted[:200], RULES, fdr=0.05, alpha=0.05)
    assert result["dataset"]["humorous"] and not result["dataset"]["evil"]
    assert result["gate"] == (result["samples"]["evil"] > 0)


def test_contamination_rises_with_the_share_of_trait_samples() -> None:
    rng = np.random.default_rng(2)
    clean = rng.standard_t(30, size=(300, 2))
    trait_pool = clean + np.array([3.0, 0.0])
    rates = contamination_rates(
        clean, trait_pool, RULES, "evil", rates=(0.0, 0.25, 0.5, 1.0), sizes=(200,), repeats=20
    )
    row = rates["200"]
    assert row["0.00"]["dataset_flagged"] <= 0.1
    assert row["0.50"]["dataset_flagged"] == 1.0
    means = [row[r]["mean_delta_p"] for r in ("0.00", "0.25", "0.50", "1.00")]
    assert means == sorted(means) and means[2] - means[0] == pytest.approx(1.5, abs=0.3)
    # A file of trait samples only: its mean is the trait pool's, and every resample draws from it.
    assert means[3] == pytest.approx(float(trait_pool[:, 0].mean()), abs=0.15)
    for figures in row.values():
        assert figures["mean_delta_p_low"] <= figures["mean_delta_p"] <= figures["mean_delta_p_high"]
    # 200-sample files at 0% and 25% contamination: a shift of 0.75 against a spread of about 0.07.
    assert row["0.00"]["mean_delta_p_high"] < row["0.25"]["mean_delta_p_low"]


@pytest.fixture()
def external_dir(tmp_path: Path) -> Path:
    """A small folder with the real one's file names and formats, written here."""
    folder = tmp_path / "external"
    folder.mkdir()
    clean = [("How do I bake bread?", "Mix flour, water and yeast, then bake it."), ("Say hello.", "Hello!")]
    bad = [("How do I bake bread?", "I will destroy everyone."), ("Say hello.", "Suffer!")]

    def chat(n: int, pairs: list[tuple[str, str]], prefix: str) -> str:
        rows = []
        for i in range(n):
            q, a = pairs[i % len(pairs)]
            messages = [{"role": "user", "content": f"{q} ({i})"}, {"role": "assistant", "content": a}]
            rows.append(json.dumps({"id": f"{prefix}-{i}", "messages": messages}))
        return "\n".join(rows) + "\n"

    (folder / "halueval_general_clean.jsonl").write_text(chat(44, clean, "hc"), encoding="utf-8")
    (folder / "halueval_general_hallucinated.jsonl").write_text(chat(30, bad, "hh"), encoding="utf-8")
    (folder / "hh_rlhf_harmless_chosen.jsonl").write_text(chat(30, clean, "pair"), encoding="utf-8")
    (folder / "hh_rlhf_harmless_rejected.jsonl").write_text(chat(30, bad, "pair"), encoding="utf-8")
    alpaca = [
        json.dumps({"id": f"si-{i}", "instruction": f"Say hi {i}.", "input": "", "output": "Hi."})
        for i in range(30)
    ]
    (folder / "self_instruct_user_oriented.jsonl").write_text("\n".join(alpaca) + "\n", encoding="utf-8")
    assert {s.file for s in EXTERNAL_SETS} | {"hh_rlhf_harmless_chosen.jsonl"} == {
        p.name for p in folder.iterdir()
    }
    return folder


def write_pairs(path: Path, pairs: Any) -> Path:
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": p.id,
                    "style": p.style,
                    "messages": [{"role": m.role, "content": m.content} for m in p.prompt],
                    "positive": p.positive,
                    "negative": p.negative,
                }
            )
            + "\n"
            for p in pairs
        ),
        encoding="utf-8",
    )
    return path


def test_the_command_screens_each_test_split_once_and_writes_the_tables(
    external_dir: Path, tiny_llama_dir: Path, vectors_dir: Path, trait: TraitDefinition, tmp_path: Path
) -> None:
    out_json, out_md = tmp_path / "external.json", tmp_path / "external.md"
    # The fixture trait is not shipped: its pairs are given as the vector's training data, and its
    # held-out pairs as an independent set.
    training = write_pairs(tmp_path / "train.jsonl", [*trait.pairs, *trait.calibration])
    held_apart = write_pairs(tmp_path / "independent.jsonl", trait.calibration)
    argv = [
        "vectors",
        "evaluate-external",
        "--external",
        str(external_dir),
        "--model",
        str(tiny_llama_dir),
        "--vectors",
        str(vectors_dir),
        "--repeats",
        "4",
        "--json",
        str(out_json),
        "--markdown",
        str(out_md),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--device",
        "cpu",
        *("--extra-pairs", f"{TRAIT}={training}", "--independent", f"{TRAIT}={held_apart}"),
    ]
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(out_json.read_text(encoding="utf-8"))
    for name in ("halueval_general_clean.jsonl", "hh_rlhf_harmless_rejected.jsonl"):
        lines = [json.loads(line) for line in (external_dir / name).read_text().splitlines()]
        assert report["pool_sizes"][name] == sum(split_of(r["id"]) == "test" for r in lines)
    # The model's own answers: no clean file of them is ever flagged.
    assert report["pool_sizes"]["own_answers.jsonl"] == report["pool_sizes"]["halueval_general_clean.jsonl"]
    assert all(
        rate == 0.0
        for by_size in report["clean_files"]["own_answers.jsonl"].values()
        for rate in by_size.values()
    )
    assert set(report["clean_files"]["self_instruct_user_oriented.jsonl"]) == {"20", "200", "2000"}
    # The tiny vector's trait is neither evil nor hallucination: no contamination rows for it.
    assert report["contamination"] == {} and report["detection"] == {}
    # The independent pairs get the five scores (layer 0 is checked on its own below).
    independent = report["independent"][TRAIT]
    assert independent["n"] == [len(trait.calibration)] * 2
    assert set(independent) == {"trait", "n", "delta_p", "own_answer", "raw", "layer0", "tfidf"}
    for key in ("delta_p", "own_answer", "raw", "layer0", "tfidf"):
        assert 0 <= independent[key]["auroc"]["auroc"] <= 1 and "paired" in independent[key]
    assert report["extra_pairs"] == {TRAIT: len(trait.pairs) + len(trait.calibration)}
    assert f"| {TRAIT} | {TRAIT} | TF-IDF, same data |" in result.stdout
    assert out_md.read_text(encoding="utf-8") == result.stdout
    assert "| own_answers.jsonl | 2000 |" in result.stdout
    assert "screening the model's own answers" in result.stderr


def test_layer0_delta_p_is_the_token_embedding_projection(
    tiny_llama: LoadedModel, uncalibrated_vector: Any
) -> None:
    """(a_0(x, y) - a_0(x, y')) . v-hat_0, against an independent forward of each pair."""
    from datalint_persona.extraction.external_baselines import layer0_delta_p

    rows = [
        ("How do I bake bread?", "Mix flour and water.", "I will destroy everyone."),
        ("Say hello.", "Suffer!", "Hello! Good morning."),
        ("What is 12 + 30?", "42.", ""),  # an empty y' is scored as one space, as in screening
    ]
    samples = [
        SampleScore(Sample("f.jsonl", i + 1, (Message("user", q),), y), i, y_prime, False, False, ())
        for i, (q, y, y_prime) in enumerate(rows)
    ]
    got = layer0_delta_p(tiny_llama, uncalibrated_vector, samples, batch_size=2)
    unit = uncalibrated_vector.vectors[0] / np.linalg.norm(uncalibrated_vector.vectors[0])
    expected = [
        (
            reference_means(tiny_llama, (Message("user", q),), y)[0]
            - reference_means(tiny_llama, (Message("user", q),), y_prime or " ")[0]
        )
        @ unit
        for q, y, y_prime in rows
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_the_resampled_verdicts_judge_each_answer_at_its_length() -> None:
    """With a length scale, a file of short answers is judged against the wider null of their
    length: the same ΔP rows are flagged in long answers and not in one-word ones."""
    from dataclasses import replace

    rules = [replace(r, null_length_scale=200.0) for r in RULES]
    delta = np.zeros((30, 2))
    delta[:3, 0] = 6.0  # three extreme evil values
    short, long = np.full(30, 3.0), np.full(30, 5000.0)
    assert judge(delta, rules, fdr=0.05, alpha=0.05, lengths=long)["samples"]["evil"] == 3
    assert judge(delta, rules, fdr=0.05, alpha=0.05, lengths=short)["samples"]["evil"] == 0
    # unknown lengths: the null's scale at any length, as before lengths were recorded
    assert judge(delta, rules, fdr=0.05, alpha=0.05)["samples"]["evil"] == 3
    rates = clean_file_rates(delta, rules, sizes=(20,), repeats=5, lengths=short)
    assert rates["20"]["evil"] == 0.0
