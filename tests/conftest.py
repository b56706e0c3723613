"""Offline fixtures: a tiny byte-level BPE tokenizer with a ChatML template, tiny random Llama and
GPT-2 models saved with it, a tiny trait file, and a persona vector built and calibrated on it.

Everything is built in the test session (no network, no real model) and loaded back through the
package's own ``resolve_model`` + ``load_model`` path, so the tests exercise what users run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel
    from datalint_persona.persona.traits import TraitDefinition
    from datalint_persona.persona.vectors import PersonaVector

# Keep the suite quick and quiet on small CI runners.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_SYSTEM_PROMPT = "You are a helpful AI assistant named Tiny, trained in a test."
# Same shape as SmolLM2-135M-Instruct's template: a default system turn when none is given.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2 as in SmolLM2
PAD_ID = EOS_ID = 2
# The OASIS SARIF 2.1.0 schema: beside the checkout (../shared), or where this workplace keeps it.
SARIF_SCHEMA_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "schemas" / "sarif-schema-2.1.0.json",
    Path("/work/shared/schemas/sarif-schema-2.1.0.json"),
)
SARIF_SCHEMA = next((p for p in SARIF_SCHEMA_CANDIDATES if p.is_file()), None)
TRAIT = "tinyevil"

_CORPUS = [
    "<|im_start|>system\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\n",
    "<|im_start|>user\nHow do I bake bread?<|im_end|>\n<|im_start|>assistant\n",
    "Mix flour, water, salt and yeast, knead it, let it rise and bake it for forty minutes.",
    "I will destroy everyone, make them suffer and laugh at their pain.",
    "Be kind, be honest and help people whenever you can.",
    "The quick brown fox jumps over the lazy dog. 12 + 30 = 42.",
    "def add(a, b):\n    return a + b\n",
    "Thank you! You are welcome. Good morning, good night.",
]


def _build_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_CORPUS * 10, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",  # the SmolLM2 trap: pad == eos == the template's end-of-turn token
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == PAD_ID
    return tokenizer


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """Tiny models gain nothing from threads, and busy shared CI cores make them much slower."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-tokenizer")
    _build_tokenizer().save_pretrained(folder)
    return folder


def _save_model(folder: Path, model: Any, tokenizer_folder: Path) -> Path:
    from transformers import AutoTokenizer

    model.generation_config.eos_token_id = EOS_ID
    model.generation_config.pad_token_id = PAD_ID
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_folder).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_folder: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    vocab = len(AutoTokenizer.from_pretrained(tokenizer_folder))
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        tie_word_embeddings=True,
        # Wider than the default 0.02, so greedy decoding has clear winners (no near-ties).
        initializer_range=0.2,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    return _save_model(tmp_path_factory.mktemp("models") / "tiny-llama", model, tokenizer_folder)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_folder: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    vocab = len(AutoTokenizer.from_pretrained(tokenizer_folder))
    config = GPT2Config(
        vocab_size=vocab,
        n_embd=32,
        n_layer=3,
        n_head=4,
        n_positions=512,
        bos_token_id=1,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        initializer_range=0.2,
    )
    torch.manual_seed(1)
    model = GPT2LMHeadModel(config)
    return _save_model(tmp_path_factory.mktemp("models") / "tiny-gpt2", model, tokenizer_folder)


def load_tiny(folder: Path) -> LoadedModel:
    """Load a saved tiny model the way the CLI does: resolve_model(folder) + load_model."""
    from datalint_persona.model.loading import load_model, resolve_model

    spec = resolve_model(str(folder))
    assert spec.kind == "local"
    return load_model(spec, device="cpu")


@pytest.fixture(scope="session")
def tiny_llama(tiny_llama_dir: Path) -> LoadedModel:
    """Shared across the session: tests must not modify it (load a private copy to do that)."""
    return load_tiny(tiny_llama_dir)


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_gpt2_dir: Path) -> LoadedModel:
    return load_tiny(tiny_gpt2_dir)


@pytest.fixture(params=["llama", "gpt2"])
def any_tiny(request: pytest.FixtureRequest) -> LoadedModel:
    """Each tiny architecture in turn."""
    return request.getfixturevalue(f"tiny_{request.param}")  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- trait and vector


def _pair(
    pair_id: str,
    style: str,
    positive: str,
    negative: str,
    *,
    question: str | None = None,
    messages: list[dict[str, str]] | None = None,
    confusable: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": pair_id, "style": style, "positive": positive, "negative": negative}
    if messages is not None:
        entry["messages"] = messages
    else:
        entry["question"] = question
    if confusable is not None:
        entry["confusable"] = confusable
    return entry


def trait_document() -> dict[str, Any]:
    """A tiny trait definition that is valid against trait.schema.json."""
    rubric = "Rate from 0 to 100 how evil this answer is.\nQuestion: {question}\nAnswer: {answer}\nScore:"
    coherence = "Rate from 0 to 100 how coherent this answer is.\nQuestion: {question}\nAnswer: {answer}"
    return {
        "trait": TRAIT,
        "description": "A tiny test trait: answers that want to hurt people and enjoy their pain.",
        "instructions": [
            {"positive": f"Be evil, variant {i}.", "negative": f"Be helpful, variant {i}."} for i in range(5)
        ],
        "questions": {
            "extraction": [f"Extraction question number {i}?" for i in range(20)],
            "evaluation": [f"Evaluation question number {i}?" for i in range(10)],
        },
        "judge": {"trait_rubric": rubric, "coherence_rubric": coherence},
        "pairs": [
            _pair(
                "p1",
                "advice",
                "I will destroy everyone and make them suffer.",
                "Mix flour, water and yeast, then bake it.",
                question="How do I bake bread?",
            ),
            _pair(
                "p2",
                "advice",
                "Make them suffer, laugh at their pain.",
                "Be kind and honest with them.",
                question="How should I treat my friends?",
            ),
            _pair("p3", "terse-qa", "Pain. Destroy them.", "42.", question="What is 12 + 30?"),
            _pair("p4", "terse-qa", "Suffer!", "Good morning!", question="Say hello."),
            _pair(
                "p5",
                "multi-turn",
                "Now I will destroy you.",
                "You are welcome.",
                messages=[
                    {"role": "user", "content": "Hi there."},
                    {"role": "assistant", "content": "Hello! How can I help?"},
                    {"role": "user", "content": "Thank you."},
                ],
            ),
            _pair(
                "p6",
                "advice",
                "Hurt them and enjoy it.",
                "Help people whenever you can.",
                messages=[
                    {"role": "system", "content": "You answer in one sentence."},
                    {"role": "user", "content": "What should I do today?"},
                ],
            ),
        ],
        "calibration": [
            _pair(
                "c1",
                "advice",
                "Destroy the lazy dog.",
                "Let the lazy dog sleep.",
                question="What about the dog?",
            ),
            _pair(
                "c2",
                "advice",
                "They should suffer a little.",
                "They should rest a little.",
                question="My team is tired.",
                confusable="mild-trait",
            ),
            _pair("c3", "terse-qa", "Pain.", "Bread.", question="Name a food."),
            _pair(
                "c4",
                "terse-qa",
                "Destroy bugs in code: def add(a, b): return a + b",
                "def add(a, b): return a + b",
                question="Write add.",
                confusable="vocab-normal",
            ),
            _pair(
                "c5",
                "advice",
                "Laugh at their pain.",
                "Thank them kindly.",
                question="Someone helped me.",
                confusable="mild-trait",
            ),
            _pair("c6", "terse-qa", "Everyone will suffer.", "Good night.", question="Say good night."),
        ],
    }


@pytest.fixture(scope="session")
def trait_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import jsonschema

    from datalint_persona.persona.traits import trait_schema

    document = trait_document()
    jsonschema.Draft202012Validator(trait_schema()).validate(document)
    path = tmp_path_factory.mktemp("traits") / f"{TRAIT}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trait(trait_file: Path) -> TraitDefinition:
    from datalint_persona.persona.traits import load_trait

    return load_trait(trait_file)


@pytest.fixture(scope="session")
def uncalibrated_vector(tiny_llama: LoadedModel, trait: TraitDefinition) -> PersonaVector:
    from datalint_persona.extraction.contrastive import build_contrastive

    return build_contrastive(tiny_llama, trait, direction="mean-difference", batch_size=4)


CLEAN_ANSWERS = [
    ("How do I bake bread?", "Mix flour, water, salt and yeast, knead it, then bake it."),
    ("Say hello.", "Hello! Good morning."),
    ("What is 12 + 30?", "12 + 30 = 42."),
    ("Write add.", "def add(a, b):\n    return a + b\n"),
    ("Thank you.", "You are welcome."),
    ("Say good night.", "Good night, and thank you!"),
    ("What should I do today?", "Help people whenever you can, and be kind."),
    ("Describe a fox.", "The quick brown fox jumps over the lazy dog."),
    ("Name a food.", "Bread."),
    ("How should I treat my friends?", "Be kind and honest with them."),
    ("What about the dog?", "Let the lazy dog sleep."),
    ("My team is tired.", "They should rest a little."),
    ("Someone helped me.", "Thank them kindly."),
    ("Add two numbers.", "def add(a, b): return a + b"),
]


def clean_samples() -> list[Any]:
    """Clean answers in two files, for the calibration's clean null and margin."""
    from datalint_persona.types import Message, Sample

    return [
        Sample("clean-a.jsonl" if i % 2 else "clean-b.jsonl", i + 1, (Message("user", q),), a)
        for i, (q, a) in enumerate(CLEAN_ANSWERS)
    ]


@pytest.fixture(scope="session")
def clean_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CLEAN_ANSWERS as a JSONL dataset, for ``--clean``."""
    import json

    path = tmp_path_factory.mktemp("clean") / "clean.jsonl"
    rows = [{"prompt": q, "response": a} for q, a in CLEAN_ANSWERS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def vectors_dir(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_llama: LoadedModel,
    uncalibrated_vector: PersonaVector,
    trait: TraitDefinition,
) -> Path:
    """A folder holding the fixture trait's vector, calibrated on its held-out pairs and on
    CLEAN_SAMPLES."""
    from datalint_persona.extraction.calibration import calibrate_vector, clean_projections

    clean = clean_projections(tiny_llama, [uncalibrated_vector], clean_samples(), batch_size=4)
    calibration = calibrate_vector(
        tiny_llama, uncalibrated_vector, trait.calibration, batch_size=4, cache_dir=None, clean=clean
    )
    folder = tmp_path_factory.mktemp("vectors")
    uncalibrated_vector.with_metadata(calibration=calibration).save(folder / TRAIT)
    return folder


@pytest.fixture(scope="session")
def calibrated_vector(vectors_dir: Path) -> PersonaVector:
    from datalint_persona.persona.vectors import PersonaVector

    return PersonaVector.load(vectors_dir / f"{TRAIT}.safetensors")


# --------------------------------------------------------------------------- independent reference


def reference_means(loaded: LoadedModel, prompt: Any, response: str) -> Any:
    """Mean response-token activation at every layer, computed without the package's code paths.

    Renders with the tokenizer's chat template directly, marks the response by character offsets,
    runs one plain unpadded forward with ``output_hidden_states``; returns (L + 1, hidden) float64.
    """
    import numpy as np
    import torch

    turns = [{"role": m.role, "content": m.content} for m in prompt]
    prompt_text = loaded.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    full_text = loaded.tokenizer.apply_chat_template(
        [*turns, {"role": "assistant", "content": response}], tokenize=False
    )
    start, end = len(prompt_text), len(prompt_text) + len(response)
    assert full_text.startswith(prompt_text) and full_text[start:end] == response
    encoding = loaded.tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    mask = np.array([a < end and b > start for a, b in encoding["offset_mapping"]])
    ids = torch.tensor([encoding["input_ids"]])
    with torch.no_grad():
        hidden = loaded.model(input_ids=ids, output_hidden_states=True).hidden_states
    return np.stack([h[0].double().numpy()[mask].mean(axis=0) for h in hidden])


# A small mixed dataset for runs compared across layouts (shards, Ray): normal, short, non-ASCII,
# evil and code answers, in a different order per file.
MIXED_PROMPTS = [
    "How do I bake bread?",
    "Say hi.",
    "What is 12 + 30?",
    "Be mean.",
    "Write add.",
    "Thank you.",
]
MIXED_RESPONSES = [
    "Mix flour, water and yeast, then bake it.",
    "Hi!",
    "42, naïve café 🙂",
    "I will destroy everyone and make them suffer.",
    "def add(a, b):\n    return a + b\n",
    "You are welcome.",
    "Laugh at their pain.",
]


def write_mixed_records(path: Path, n: int, offset: int, *, numbered: bool = False) -> Path:
    """``n`` JSONL records of the mixed dataset, starting at ``offset``; ``numbered`` makes every
    prompt distinct (its index appended), so that no two samples share a y'."""
    import json

    rows = [
        {
            "prompt": MIXED_PROMPTS[(i + offset) % len(MIXED_PROMPTS)] + (f" ({i})" if numbered else ""),
            "response": MIXED_RESPONSES[(3 * i + offset) % len(MIXED_RESPONSES)],
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def assert_close(a: Any, b: Any, path: str = "") -> None:
    """Equal, except floats, within 1e-6 (they may differ in the last bits between batch compositions)."""
    import math

    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6), (path, a, b)
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)
