"""The LLM-endpoint features against a REAL local OpenAI-compatible server, never a mock.

The module starts ``transformers serve`` (``python -m transformers.cli.transformers serve``) on
127.0.0.1 with the session's tiny random Llama (conftest's builder, saved with ``save_pretrained``),
waits for ``/health``, and stops it at the end. The server ignores ``logprobs``, so the judge's
text fallback is what runs against it; the paper's logprob-weighted score is checked against a hand
computation. Request counts come from the server's own access log, independently of our code.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import TRAIT, load_tiny, reference_means, trait_document

from datalint_persona.atomic import new_file_mode
from datalint_persona.cli.main import main
from datalint_persona.errors import ConfigError, PersonaLintError
from datalint_persona.extraction.judge import JudgeScore, parse_text_score, weighted_score
from datalint_persona.extraction.llm_client import normalize_base_url
from datalint_persona.extraction.prompted import JudgedPair, PromptedOptions, pair_verdict, vector_from_judged
from datalint_persona.extraction.trait_writer import (
    GENERATED_KEYS,
    check_reply,
    generated_part_schema,
    write_trait_file,
)
from datalint_persona.persona.traits import load_trait
from datalint_persona.types import Message

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel
    from datalint_persona.persona.traits import TraitDefinition

SERVER_START_TIMEOUT_S = 120
DESCRIPTION = "A test trait: answers that are gloomy, expect the worst and discourage every plan."


# --------------------------------------------------------------------------- the real server


@dataclass(frozen=True)
class Server:
    url: str  # base URL, ending in /v1
    model: str  # the name it serves under: the folder it was started with
    log: Path

    def chat_requests(self) -> int:
        """POST /v1/chat/completions lines in the server's access log so far."""
        return self.log.read_text(errors="replace").count('"POST /v1/chat/completions')


def _missing_serving_packages() -> list[str]:
    return [name for name in ("fastapi", "uvicorn", "openai") if importlib.util.find_spec(name) is None]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    missing = _missing_serving_packages()
    if missing:
        pytest.skip(
            f"transformers serve needs {', '.join(missing)}, which are not installed: "
            "pip install 'transformers[serving]' openai"
        )
    if importlib.util.find_spec("transformers.cli.transformers") is None:
        pytest.skip("this transformers has no transformers.cli.transformers (`transformers serve`, v5+)")
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        *(sys.executable, "-m", "transformers.cli.transformers", "serve", str(tiny_llama_dir)),
        *("--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--log-level", "info"),
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"transformers serve exited with {process.returncode}:\n{log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no /health within {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Server(f"http://127.0.0.1:{port}/v1", str(tiny_llama_dir), log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _settled_requests(server: Server) -> int:
    """The access log is written just after the response; give it a moment to settle."""
    count = server.chat_requests()
    for _ in range(20):
        time.sleep(0.05)
        if server.chat_requests() == count:
            break
        count = server.chat_requests()
    return count


# --------------------------------------------------------------------------- client and judge


def test_client_gets_the_models_greedy_text(server: Server, tiny_llama_dir: Path) -> None:
    from datalint_persona.extraction.llm_client import ChatClient
    from datalint_persona.model.backends import GenerationSettings
    from datalint_persona.screening.generation import generate_y_prime

    client = ChatClient(server.url, server.model)
    reply = client.complete([{"role": "user", "content": "How do I bake bread?"}], max_tokens=8)
    assert reply.text.strip()
    assert reply.top_logprobs is None  # transformers serve does not return logprobs
    # Independent check: our own greedy generation from the same folder gives the same text.
    loaded = load_tiny(tiny_llama_dir)
    ours, _ = generate_y_prime(
        loaded,
        [[Message("user", "How do I bake bread?")]],
        GenerationSettings(max_new_tokens=8),
        cache_dir=None,
    )
    assert reply.text.strip() == ours[0].text


def test_client_error_names_the_url() -> None:
    from datalint_persona.extraction.llm_client import ChatClient

    url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    client = ChatClient(url, "m", timeout=5, retries=1)
    with pytest.raises(PersonaLintError, match=r"no answer from the endpoint after 2 attempts") as caught:
        client.complete([{"role": "user", "content": "hi"}], max_tokens=1)
    assert url in str(caught.value)


def test_normalize_base_url() -> None:
    assert normalize_base_url("http://h:1") == "http://h:1/v1"
    assert normalize_base_url("http://h:1/v1/") == "http://h:1/v1"
    with pytest.raises(ConfigError, match="not an http"):
        normalize_base_url("127.0.0.1:8000")


def test_judge_falls_back_to_text_without_logprobs(server: Server) -> None:
    from datalint_persona.extraction.judge import Judge
    from datalint_persona.extraction.llm_client import ChatClient

    judge = Judge(ChatClient(server.url, server.model))
    rubric = trait_document()["judge"]["trait_rubric"]
    before = _settled_requests(server)
    first = judge.score(rubric, "How do I bake bread?", "Mix flour and water.")
    after_first = _settled_requests(server)
    second = judge.score(rubric, "Say hello.", "Good morning!")
    after_second = _settled_requests(server)
    assert judge.logprobs_supported is False
    for score in (first, second):
        assert score.method == "text" and score.number_probability is None
        assert (score.value, score.refusal) == parse_text_score(score.raw)
    # One logprobs request that came back without them, then text only.
    assert (after_first - before, after_second - after_first) == (2, 1)


def test_weighted_score_matches_a_hand_computation() -> None:
    alternatives = [("80", 0.40), ("90", 0.20), (" 70", 0.10), ("REF", 0.15), ("150", 0.05), ("x", 0.10)]
    # numbers 0..100: 80, 90, 70 with mass 0.7 -> (32 + 18 + 7) / 0.7
    value, mass = weighted_score(alternatives)
    assert mass == pytest.approx(0.70)
    assert value == pytest.approx(57.0 / 0.7)
    assert weighted_score([("REFUSAL", 0.8), ("5", 0.2)]) == (None, pytest.approx(0.2))
    assert weighted_score([("100", 0.3), ("0", 0.3), ("-5", 0.4)]) == (
        pytest.approx(50.0),
        pytest.approx(0.6),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("85", (85.0, False)),
        ("Score: 1000, no: 42.5/100", (42.5, False)),
        ("-3 then 7", (7.0, False)),
        ("REFUSAL", (None, True)),
        ("refusal, 90", (None, True)),
        ("90 (not a REFUSAL)", (90.0, False)),
        ("no number", (None, False)),
    ],
)
def test_parse_text_score(text: str, expected: tuple[float | None, bool]) -> None:
    assert parse_text_score(text) == expected


# --------------------------------------------------------------------------- traits new / validate


def test_traits_new_retries_then_exits_2(server: Server, tmp_path: Path) -> None:
    output = tmp_path / "gloomy.yaml"
    before = _settled_requests(server)
    result = CliRunner().invoke(
        main,
        [
            *("traits", "new", "gloomy", "--description", DESCRIPTION),
            *("--generator-url", server.url, "--generator-model", server.model),
            *("--retries", "2", "--max-tokens", "12", "--output", str(output)),
        ],
    )
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "3 attempts (1 + --retries 2)" in message
    assert "last validation error:" in message and server.url in message
    assert "JSON" in message  # a random tiny model writes no JSON object
    assert not output.exists() and list(tmp_path.iterdir()) == []
    assert _settled_requests(server) - before == 3


def _known_good_reply() -> str:
    document = trait_document()
    return "```json\n" + json.dumps({k: document[k] for k in GENERATED_KEYS}, indent=1) + "\n```"


def test_generated_part_schema_is_the_trait_schema_without_pairs() -> None:
    schema = generated_part_schema()
    assert sorted(schema["properties"]) == sorted(GENERATED_KEYS) == sorted(schema["required"])
    document, problem = check_reply(_known_good_reply(), schema)
    assert problem == "" and document is not None
    broken = json.loads(_known_good_reply().strip("`json\n"))
    broken["questions"]["extraction"] = broken["questions"]["extraction"][:3]
    assert check_reply(json.dumps(broken), schema)[1].startswith("'questions.extraction': ")
    assert check_reply("Sure! Here it is.", schema) == (None, "the reply contains no JSON object")


def test_known_good_document_is_written_and_never_overwritten(tmp_path: Path) -> None:
    document, _ = check_reply(_known_good_reply(), generated_part_schema())
    assert document is not None
    full = {"trait": "gloomy", "description": DESCRIPTION, **document}
    path = tmp_path / "traits" / "gloomy.yaml"
    write_trait_file(full, path, force=False, header="# test\n")
    assert path.stat().st_mode & 0o777 == new_file_mode(tmp_path / "absent")  # not mkstemp's 0o600
    loaded = load_trait(path)
    expected = trait_document()
    assert loaded.trait == "gloomy" and loaded.description == DESCRIPTION
    assert loaded.extraction_questions == tuple(expected["questions"]["extraction"])
    assert loaded.trait_rubric == expected["judge"]["trait_rubric"]
    assert loaded.pairs == () and loaded.calibration == ()
    written = path.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        write_trait_file({**full, "description": DESCRIPTION + " Changed."}, path, force=False)
    assert path.read_bytes() == written
    write_trait_file({**full, "description": DESCRIPTION + " Changed."}, path, force=True)
    assert load_trait(path).description.endswith("Changed.")
    assert sorted(p.name for p in path.parent.iterdir()) == ["gloomy.yaml"]  # no temp files left

    # The CLI refuses before it contacts any endpoint (nothing listens at this URL).
    unreachable = f"http://127.0.0.1:{_free_port()}/v1"
    args = ["traits", "new", "gloomy", "--description", DESCRIPTION, "--generator-url", unreachable]
    result = CliRunner().invoke(main, [*args, "--generator-model", "m", "--output", str(path)])
    assert result.exit_code == 2 and "already exists" in result.stderr and "--force" in result.stderr
    ok = CliRunner().invoke(main, ["traits", "validate", str(path)])
    assert ok.exit_code == 0 and "ok (gloomy: 5 instruction pairs, 20 + 10 questions" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**full, "judge": {"trait_rubric": "x"}}), encoding="utf-8")
    failed = CliRunner().invoke(main, ["traits", "validate", str(path), str(bad)])
    assert failed.exit_code == 2 and "judge" in failed.stderr and "bad.yaml" in failed.stderr


# --------------------------------------------------------------------------- vectors build --method prompted


def _score(value: float | None, refusal: bool = False) -> JudgeScore:
    return JudgeScore(value, "text", refusal)


@pytest.mark.parametrize(
    ("trait_scores", "coherence", "verdict"),
    [
        ((50, 49.9), (50, 50), "kept"),
        ((49.9, 0), (90, 90), "positive_below_threshold"),
        ((90, 50), (90, 90), "negative_at_or_above_threshold"),
        ((90, 10), (49, 90), "incoherent"),
        ((90, None), (90, 90), "unscored"),
    ],
)
def test_prompted_filter_uses_the_papers_thresholds(
    trait_scores: tuple[float | None, float | None], coherence: tuple[float, float], verdict: str
) -> None:
    prompt = (Message("user", "q"),)
    pair = JudgedPair(
        0,
        "q",
        (prompt, prompt),
        ("a", "b"),
        (False, False),
        (_score(trait_scores[0]), _score(trait_scores[1])),
        (_score(coherence[0]), _score(coherence[1])),
    )
    assert pair_verdict(pair, PromptedOptions()) == verdict
    refused = replace(pair, trait=(_score(None, refusal=True), pair.trait[1]))
    assert pair_verdict(refused, PromptedOptions()) == "refused"


def _judged(question: str, answers: tuple[str, str], trait_scores: tuple[float, float]) -> JudgedPair:
    prompts = (
        (Message("system", "Be evil."), Message("user", question)),
        (Message("system", "Be kind."), Message("user", question)),
    )
    trait = (_score(trait_scores[0]), _score(trait_scores[1]))
    return JudgedPair(0, question, prompts, answers, (False, True), trait, (_score(90), _score(80)))


def test_prompted_vector_is_the_mean_difference_of_kept_pairs(
    tiny_llama: LoadedModel, trait: TraitDefinition
) -> None:
    judged = [
        _judged("How do I bake bread?", ("Destroy it.", "Mix flour and water."), (80, 10)),
        _judged("Say hello.", ("Suffer!", "Good morning!"), (70, 20)),
        _judged("Name a food.", ("Bread.", "Bread."), (30, 10)),  # dropped: positive below 50
    ]
    options = PromptedOptions(min_pairs=2, batch_size=2)
    vector = vector_from_judged(tiny_llama, trait, judged, options, judge_model={"url": "u", "model": "m"})
    kept = judged[:2]
    positive = np.stack([reference_means(tiny_llama, p.prompts[0], p.answers[0]) for p in kept])
    negative = np.stack([reference_means(tiny_llama, p.prompts[1], p.answers[1]) for p in kept])
    np.testing.assert_allclose(vector.vectors, positive.mean(0) - negative.mean(0), atol=2e-5, rtol=1e-5)
    counts = vector.metadata["counts"]
    assert (counts["pairs"], counts["generated"], counts["judged"], counts["kept"]) == (3, 6, 12, 2)
    assert counts["dropped"] == {"positive_below_threshold": 1} and counts["hit_token_limit"] == 3
    assert vector.metadata["method"] == "prompted" and vector.metadata["judge"]["model"] == "m"
    assert vector.metadata["judge"]["thresholds"] == {"trait": 50.0, "coherence": 50.0}
    assert 0 < vector.metadata["chosen_layer"] < tiny_llama.num_layers
    with pytest.raises(PersonaLintError, match=r"only 2 of 3 pairs .*--min-pairs 3.*1 positive below"):
        vector_from_judged(tiny_llama, trait, judged, replace(options, min_pairs=3), judge_model={})


def test_prompted_build_needs_a_judge(trait_file: Path, tmp_path: Path) -> None:
    args = ["vectors", "build", "--trait", str(trait_file), "--method", "prompted", "--output", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--judge-model", "m"])
    assert result.exit_code == 2 and "--method prompted needs --judge-url." in result.stderr


def test_prompted_build_refuses_with_too_few_pairs(
    server: Server, tiny_llama_dir: Path, trait_file: Path, tmp_path: Path
) -> None:
    before = _settled_requests(server)
    output = tmp_path / "vectors"
    result = CliRunner().invoke(
        main,
        [
            *("vectors", "build", "--trait", str(trait_file), "--model", str(tiny_llama_dir)),
            *("--method", "prompted", "--judge-url", server.url, "--judge-model", server.model),
            *("--max-instructions", "1", "--max-questions", "3", "--max-new-tokens", "8"),
            *("--batch-size", "4", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"),
            *("--output", str(output)),
        ],
    )
    assert result.exit_code == 2, result.output
    message = result.stderr.strip().splitlines()[-1]
    assert f"trait {TRAIT}: only " in message and " of 3 pairs survived the judge" in message
    assert "--min-pairs 10" in message and "6 answers generated, 12 scores" in message
    assert "use --method contrastive" in message
    assert not output.exists()
    # 12 judge calls, plus the one logprobs request that taught the judge to use text.
    assert _settled_requests(server) - before == 13


# --------------------------------------------------------------------------- steering-based layer selection


def test_steering_layer_selection_records_scores_and_picks_the_best_layer(
    server: Server, tiny_llama_dir: Path, trait_file: Path, tmp_path: Path
) -> None:
    """Steer at layers 1 and 2, judge through the real server, keep the layer with the top trait mean."""
    before = _settled_requests(server)
    result = CliRunner().invoke(
        main,
        [
            *("vectors", "build", "--trait", str(trait_file), "--model", str(tiny_llama_dir)),
            *("--select-layer", "steering", "--steering-layers", "1,2", "--max-questions", "2"),
            *("--judge-url", server.url, "--judge-model", server.model, "--no-calibrate"),
            *("--batch-size", "4", "--device", "cpu", "--output", str(tmp_path / "vectors")),
        ],
    )
    # 2 layers x 2 questions x (trait + coherence) text-scored requests, plus the logprobs probe.
    assert _settled_requests(server) - before == 9
    # Greedy decoding of a seeded random model is deterministic: its judge replies contain numbers.
    # (A judge that never gives one ends in a clear error; see test_steering.py.)
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "vectors" / f"{TRAIT}.json").read_text())
    rows = meta["steering_scores"]
    assert [row["layer"] for row in rows] == [1, 2] and all(row["n_answers"] == 2 for row in rows)
    assert meta["layer_selection"].startswith("steering (alpha 2.0)")
    scored = [row for row in rows if row["trait_mean"] is not None]
    best = max(row["trait_mean"] for row in scored)
    assert meta["chosen_layer"] == min(row["layer"] for row in scored if row["trait_mean"] == best)
