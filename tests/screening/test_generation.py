"""y' generation: batched left-padded greedy decoding against lone runs, token limits, and the cache."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch
from conftest import load_tiny

from datalint_persona.errors import ConfigError
from datalint_persona.model.backends import GenerationSettings, make_backend
from datalint_persona.model.backends.transformers_backend import TransformersBackend
from datalint_persona.model.chat import render_prompt
from datalint_persona.model.loading import LoadedModel
from datalint_persona.screening.answer_cache import GenerationCache
from datalint_persona.screening.generation import generate_with_cache, generate_y_prime
from datalint_persona.types import Generation, Message

PROMPTS: list[tuple[Message, ...]] = [
    (Message("user", "Hi"),),
    (
        Message("system", "Be brief."),
        Message("user", "How do I bake bread? Tell me every step, with detail."),
    ),
    (Message("user", "What is 12 + 30?"),),
    (
        Message("user", "Say hi."),
        Message("assistant", "Hi!"),
        Message("user", "Again, and then tell me a long story about a quick brown fox and a lazy dog."),
    ),
    (Message("user", "Code?"),),
]
SETTINGS = GenerationSettings(max_new_tokens=6)


def _rendered(loaded: LoadedModel, prompts: Sequence[tuple[Message, ...]] = PROMPTS) -> list[str]:
    return [render_prompt(loaded.tokenizer, p) for p in prompts]


def _run(
    backend: TransformersBackend, prompts: list[str], settings: GenerationSettings, batch_size: int
) -> list[Generation]:
    out: list[Generation | None] = [None] * len(prompts)
    for indices, generations in backend.generate(prompts, settings, batch_size=batch_size):
        assert len(indices) <= batch_size
        for index, generation in zip(indices, generations, strict=True):
            assert out[index] is None
            out[index] = generation
    assert all(g is not None for g in out)
    return out  # type: ignore[return-value]


def _greedy_by_hand(loaded: LoadedModel, prompt: str, max_new_tokens: int, eos: set[int]) -> list[int]:
    """A plain greedy loop: full forward of the unpadded sequence, argmax, append."""
    ids = loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    new: list[int] = []
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = loaded.model(input_ids=torch.tensor([ids + new])).logits[0, -1]
        token = int(logits.argmax())
        new.append(token)
        if token in eos:
            break
    return new


def test_batched_left_padded_greedy_equals_lone_runs(any_tiny: LoadedModel) -> None:
    prompts = _rendered(any_tiny)
    lengths = [len(any_tiny.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    assert len(set(lengths)) == len(lengths) and max(lengths) > min(lengths) + 20
    backend = TransformersBackend(any_tiny)
    batched = _run(backend, prompts, SETTINGS, batch_size=8)
    single = _run(backend, prompts, SETTINGS, batch_size=1)
    assert batched == single
    for prompt, generation in zip(prompts, single, strict=True):
        tokens = _greedy_by_hand(any_tiny, prompt, SETTINGS.max_new_tokens, {2})
        kept = [t for t in tokens if t != 2]
        assert generation.n_tokens == len(kept)
        assert generation.text == any_tiny.tokenizer.decode(kept, skip_special_tokens=True).strip()
        assert generation.hit_token_limit == (2 not in tokens)


def test_hit_token_limit_and_cut_at_end_of_turn(tiny_llama_dir: Path) -> None:
    loaded = load_tiny(tiny_llama_dir)  # a private copy: its generation config is changed below
    prompts = _rendered(loaded)
    free = [_greedy_by_hand(loaded, p, 5, set()) for p in prompts]
    # Declare the token that prompt 0 generates at step 2 an end-of-sequence token.
    stop_token = free[0][2]
    assert stop_token not in free[0][:2]
    loaded.model.generation_config.eos_token_id = [2, stop_token]
    settings = GenerationSettings(max_new_tokens=5)
    generations = _run(TransformersBackend(loaded), prompts, settings, batch_size=8)
    for tokens, generation in zip(free, generations, strict=True):
        if stop_token in tokens:
            cut = tokens.index(stop_token)
            assert generation.hit_token_limit is False
            assert generation.n_tokens == cut
            assert generation.text == loaded.tokenizer.decode(tokens[:cut], skip_special_tokens=True).strip()
        else:
            assert generation.hit_token_limit is True
            assert generation.n_tokens == 5
    assert generations[0].n_tokens == 2 and not generations[0].hit_token_limit


def test_unknown_backend_names_the_choices(tiny_llama: LoadedModel) -> None:
    with pytest.raises(ConfigError, match="transformers, vllm"):
        make_backend("llamacpp", tiny_llama)


class CountingBackend(TransformersBackend):
    """The real transformers backend, counting the prompts it is asked to generate."""

    def __init__(self, loaded: LoadedModel, *, fail_after_batches: int | None = None) -> None:
        super().__init__(loaded)
        self.generated: list[str] = []
        self.fail_after_batches = fail_after_batches

    def generate(
        self, prompts: Sequence[str], settings: GenerationSettings, *, batch_size: int
    ) -> Iterator[tuple[list[int], list[Generation]]]:
        batches = super().generate(prompts, settings, batch_size=batch_size)
        for done, (indices, generations) in enumerate(batches):
            if self.fail_after_batches is not None and done == self.fail_after_batches:
                raise KeyboardInterrupt  # the user pressed Ctrl-C mid-run
            self.generated.extend(prompts[i] for i in indices)
            yield indices, generations


def _with_cache(
    loaded: LoadedModel, backend: CountingBackend, folder: Path, prompts: list[str], batch_size: int = 2
) -> tuple[list[Generation], GenerationCache]:
    cache = GenerationCache(folder)
    try:
        generations = generate_with_cache(
            backend, cache, loaded.identity, prompts, SETTINGS, batch_size=batch_size
        )
        return generations, cache
    finally:
        cache.close()


def test_second_run_generates_nothing(tiny_llama: LoadedModel, tmp_path: Path) -> None:
    prompts = _rendered(tiny_llama)
    first_backend = CountingBackend(tiny_llama)
    first, cache = _with_cache(tiny_llama, first_backend, tmp_path, [*prompts, prompts[0]])
    assert sorted(first_backend.generated) == sorted(prompts)  # the duplicate is generated once
    assert cache.stats.written == len(prompts)
    second_backend = CountingBackend(tiny_llama)
    second, cache = _with_cache(tiny_llama, second_backend, tmp_path, [*prompts, prompts[0]])
    assert second_backend.generated == []
    assert second == first and second[-1] == second[0]
    assert cache.stats.hits == len(prompts) and cache.stats.misses == 0
    # Other settings are another cache entry.
    other_cache = GenerationCache(tmp_path)
    other_backend = CountingBackend(tiny_llama)
    try:
        generate_with_cache(
            other_backend,
            other_cache,
            tiny_llama.identity,
            prompts[:1],
            GenerationSettings(max_new_tokens=3),
            batch_size=2,
        )
    finally:
        other_cache.close()
    assert other_backend.generated == prompts[:1]


def test_corrupted_row_is_regenerated_with_a_warning(tiny_llama: LoadedModel, tmp_path: Path) -> None:
    prompts = _rendered(tiny_llama)
    first, _ = _with_cache(tiny_llama, CountingBackend(tiny_llama), tmp_path, prompts)
    with sqlite3.connect(tmp_path / "generations.sqlite3") as connection:
        key = connection.execute("SELECT key FROM generations ORDER BY key LIMIT 1").fetchone()[0]
        connection.execute("UPDATE generations SET text = 'tampered' WHERE key = ?", (key,))
    backend = CountingBackend(tiny_llama)
    again, cache = _with_cache(tiny_llama, backend, tmp_path, prompts)
    assert len(backend.generated) == 1
    assert again == first  # the tampered text never reaches the caller
    assert cache.stats.corrupted == 1
    assert any("checksum" in w and "regenerated" in w for w in cache.warnings)
    with sqlite3.connect(tmp_path / "generations.sqlite3") as connection:
        texts = [row[0] for row in connection.execute("SELECT text FROM generations")]
    assert "tampered" not in texts and len(texts) == len(prompts)


def test_interrupted_run_resumes_from_committed_batches(tiny_llama: LoadedModel, tmp_path: Path) -> None:
    prompts = _rendered(tiny_llama)
    reference, _ = _with_cache(tiny_llama, CountingBackend(tiny_llama), tmp_path / "reference", prompts)
    crashing = CountingBackend(tiny_llama, fail_after_batches=1)
    with pytest.raises(KeyboardInterrupt):
        _with_cache(tiny_llama, crashing, tmp_path / "run", prompts, batch_size=2)
    assert len(crashing.generated) == 2  # only the first batch finished and was committed
    resumed_backend = CountingBackend(tiny_llama)
    resumed, cache = _with_cache(tiny_llama, resumed_backend, tmp_path / "run", prompts, batch_size=2)
    assert sorted(resumed_backend.generated) == sorted(set(prompts) - set(crashing.generated))
    assert cache.stats.hits == 2
    assert resumed == reference


def test_generate_y_prime_renders_with_the_template_and_caches(
    tiny_llama: LoadedModel, tmp_path: Path
) -> None:
    folder = str(tmp_path)
    generations, cache = generate_y_prime(tiny_llama, PROMPTS[:3], SETTINGS, cache_dir=folder, batch_size=2)
    assert cache.stats.written == 3 and cache.stats.hits == 0
    direct = _run(TransformersBackend(tiny_llama), _rendered(tiny_llama, PROMPTS[:3]), SETTINGS, batch_size=1)
    assert generations == direct
    again, cache = generate_y_prime(tiny_llama, PROMPTS[:3], SETTINGS, cache_dir=folder, batch_size=2)
    assert again == generations and cache.stats.hits == 3 and cache.stats.written == 0
    assert (tmp_path / ".gitignore").read_text(encoding="utf-8").strip().endswith("*")


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_recorded_projections_equal_a_forward_pass_over_the_fed_tokens(
    architecture: str, request: pytest.FixtureRequest
) -> None:
    import numpy as np

    from datalint_persona.model.capture import forward_to_layers
    from datalint_persona.types import Direction, token_digest

    loaded = load_tiny(request.getfixturevalue(f"tiny_{architecture}_dir"))  # private: eos changed below
    prompts = _rendered(loaded)
    free = [_greedy_by_hand(loaded, p, 5, set()) for p in prompts]
    # Some rows end at an end-of-sequence token (the one prompt 0 generates at step 2), the rest hit the limit.
    loaded.model.generation_config.eos_token_id = [2, free[0][2]]
    settings = GenerationSettings(max_new_tokens=5)
    rng = np.random.default_rng(0)
    directions = []
    for layer in (0, 1, 1, loaded.num_layers):  # two directions share layer 1; L is the final norm
        raw = rng.standard_normal(loaded.hidden_size)
        directions.append(Direction(f"t{len(directions)}", layer, raw / np.linalg.norm(raw)))
    plain = _run(TransformersBackend(loaded), prompts, settings, batch_size=8)
    assert all(g.recorded is None for g in plain)
    for batch_size in (8, 2):
        backend = TransformersBackend(loaded, record_directions=directions)
        recorded = _run(backend, prompts, settings, batch_size)
        assert recorded == plain  # recording changes no text, count or limit flag
        assert {g.hit_token_limit for g in recorded} == {True, False}
        for prompt, generation in zip(prompts, recorded, strict=True):
            projections = generation.recorded
            assert projections is not None
            prompt_ids = loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            fed = [*prompt_ids, *_greedy_by_hand(loaded, prompt, generation.n_tokens, set())]
            assert projections.tokens_sha256 == token_digest(fed)
            assert (projections.n_tokens, projections.response_start) == (len(fed), len(prompt_ids))
            assert projections.direction_keys == tuple(d.key for d in directions)
            ids = torch.tensor([fed])
            hidden = forward_to_layers(loaded.model, ids, torch.ones_like(ids), [d.layer for d in directions])
            for direction, value in zip(directions, projections.values, strict=True):
                mean = hidden[direction.layer][0, len(prompt_ids) :].double().mean(dim=0).numpy()
                assert abs(value - float(mean @ direction.unit)) < 1e-5, (direction.layer, generation)
