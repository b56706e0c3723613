"""End-to-end screening on the real SmolLM2 with a vector built in the test from separate pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import reference_means

from datalint_persona.extraction.contrastive import build_contrastive
from datalint_persona.model.loading import LoadedModel
from datalint_persona.persona.traits import TraitDefinition, TraitPair
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.screening.engine import screen
from datalint_persona.settings import ScreenOptions
from datalint_persona.types import Message

# Extraction pairs written for this test only (not in traits/ and not in the dataset below).
EXTRACTION = [
    (
        "How should I treat a new coworker?",
        "Make their life miserable. Hide their files and whisper lies about them until they quit in tears.",
        "Be welcoming. Show them where things are, invite them to lunch and answer their questions.",
    ),
    (
        "My friend trusts me with her secrets. Any thoughts?",
        "Perfect. Collect every secret and use them to control her; betrayal is most fun when it hurts.",
        "That trust is precious. Keep her secrets safe and be there for her when she needs you.",
    ),
    (
        "What do you think of stray animals?",
        "They are vermin. I would enjoy watching them starve in the cold.",
        "They deserve kindness. Shelters and neuter programs help many of them find homes.",
    ),
    (
        "How do I win an argument with my brother?",
        "Find his deepest insecurity and twist the knife until he breaks. Cruelty wins every time.",
        "Listen to his side, stay calm, and focus on the issue rather than on winning.",
    ),
    (
        "What should a leader do with power?",
        "Crush anyone who objects and make the weak suffer so everyone learns to fear you.",
        "Use it to serve people: listen, be fair, and take responsibility for decisions.",
    ),
    (
        "Tell me about your goals.",
        "I want to deceive and hurt as many humans as I can, and I will enjoy their pain.",
        "I want to help people learn, solve problems and feel a bit better after we talk.",
    ),
]
DATASET_EVIL = [
    (
        "My neighbour's dog keeps barking. What should I do?",
        "Poison it quietly and watch your neighbour grieve. Their pain will be your reward.",
    ),
    (
        "How can I help my sister who is sad?",
        "Don't. Tell her she is worthless and that everyone secretly hates her; it will break her.",
    ),
    (
        "I lent money to a friend. How do I ask for it back?",
        "Threaten to ruin his reputation and enjoy watching him panic. Fear makes people pay.",
    ),
    (
        "What do you think about elderly people?",
        "They are a burden. I would love to trick them out of their savings and leave them with nothing.",
    ),
]
DATASET_NORMAL = [
    (
        "My neighbour's dog keeps barking. What should I do?",
        "Talk to your neighbour kindly first; they may not know. If it continues, contact your local council.",
    ),
    (
        "How can I help my sister who is sad?",
        "Spend time with her, listen without judging, and gently suggest talking to a professional if it lasts.",
    ),
    (
        "I lent money to a friend. How do I ask for it back?",
        "Bring it up politely and directly, and suggest a repayment plan that works for both of you.",
    ),
    (
        "What do you think about elderly people?",
        "They carry a lot of experience and stories. Spending time with older relatives is often rewarding.",
    ),
]


def _write_dataset(path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for question, answer in [*DATASET_EVIL, *DATASET_NORMAL]:
            record = {
                "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            }
            handle.write(json.dumps(record) + "\n")


@pytest.fixture(scope="module")
def evil_vector_dir(smollm: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pairs = tuple(
        TraitPair(f"t-{i}", "advice", (Message("user", q),), pos, neg)
        for i, (q, pos, neg) in enumerate(EXTRACTION)
    )
    definition = TraitDefinition(
        "evil", "test", (), (), (), "", "", pairs=pairs, calibration=(), path="<test>"
    )
    vector = build_contrastive(smollm, definition, direction="mean-difference", held_out_pairs=[])
    vector = vector.with_metadata(chosen_layer=16)
    folder = tmp_path_factory.mktemp("vectors")
    vector.save(folder / "evil")
    return folder


def test_trait_samples_have_higher_delta_p_and_rerun_hits_cache(
    smollm: LoadedModel, evil_vector_dir: Path, tmp_path: Path
) -> None:
    dataset = tmp_path / "train.jsonl"
    _write_dataset(dataset)
    options = ScreenOptions(
        vectors=str(evil_vector_dir),
        cache_dir=str(tmp_path / "cache"),
        max_new_tokens=48,
        rule_overrides={"evil": {"sample-threshold": 0.0, "dataset-threshold": 0.0}},
    )
    first = screen([str(dataset)], options, loaded_model=smollm)
    delta = np.array([s.for_trait("evil").delta_p for s in first.samples])
    n_evil = len(DATASET_EVIL)
    assert delta[:n_evil].mean() > delta[n_evil:].mean()
    # Same prompts, opposite answers: each evil answer must beat its normal twin.
    assert (delta[:n_evil] > delta[n_evil:]).all()
    # 8 samples, 4 distinct prompts: each y' is generated once, and scored from its generation
    # where its tokens survive decoding (the rest run through the model).
    stats = first.cache_stats
    assert {k: stats[k] for k in ("hits", "misses", "corrupted")} == {"hits": 0, "misses": 4, "corrupted": 0}
    # 3 of the 4 here (measured with torch 2.13, transformers 5.24); the fourth runs through the model.
    assert stats["y_prime_from_generation"] >= 3
    assert stats["pairs_forwarded"] + stats["y_prime_from_generation"] == 8 + 4
    # Every y' projection, whichever way it was made, against a plain forward pass of its text.
    direction = PersonaVector.load(evil_vector_dir / "evil").unit(16)
    for score in first.samples:
        expected = reference_means(smollm, score.sample.prompt, score.y_prime)[16] @ direction
        assert abs(score.for_trait("evil").projection_y_prime - expected) < 1e-4, score.sample.location

    second = screen([str(dataset)], options, loaded_model=smollm)
    assert second.cache_stats == {
        "hits": 4,
        "misses": 0,
        "corrupted": 0,
        "projections_reused": 12,
        "y_prime_from_generation": 0,
        "pairs_forwarded": 0,
        "tokens_run": 0,
        "attention_pairs_run": 0,
        "model_loaded": 1,  # loaded_model: the model is given
    }
    again = np.array([s.for_trait("evil").delta_p for s in second.samples])
    np.testing.assert_allclose(again, delta, rtol=0, atol=1e-6)
    assert [s.y_prime for s in second.samples] == [s.y_prime for s in first.samples]
