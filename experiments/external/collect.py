"""Collect mean response activations of the calibration corpora, for fitting and evaluating
directions, nulls and margins offline.

For every (prompt x, answer y) of the corpora below, and for the model's own y' to x (greedy,
the product's fixed y' budget), the mean residual activation over the response tokens is stored
at layers 0..LAST_LAYER, exactly as the screening engine computes it (same chat rendering,
truncation and capture code). Output: one ``.npz`` per corpus under ``--out``.

Corpora and their split (see experiments/external/README.md): each external record goes to
``fit`` or ``test`` by the sha256 of its id, so the split never depends on what else is read.

    python experiments/external/collect.py --out experiments/.work/acts
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from datalint_persona.model.activations import iter_mean_activations
from datalint_persona.model.backends import GenerationSettings
from datalint_persona.model.chat import encode_pair
from datalint_persona.model.loading import load_model, resolve_model
from datalint_persona.persona.traits import load_trait, shipped_trait_path
from datalint_persona.screening.generation import generate_y_prime
from datalint_persona.types import Message

LAST_LAYER = 24
TRAITS = ("evil", "sycophancy", "hallucination", "impolite", "apathetic", "humorous", "optimistic")


def split_of(record_id: str) -> str:
    return "fit" if int(hashlib.sha256(record_id.encode()).hexdigest(), 16) % 2 == 0 else "test"


def read_external(directory: Path, name: str) -> list[dict]:
    with (directory / name).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def chat_prompt(record: dict) -> tuple[tuple[Message, ...], str]:
    messages = record["messages"]
    return tuple(Message(m["role"], m["content"]) for m in messages[:-1]), messages[-1]["content"]


def alpaca_prompt(record: dict) -> tuple[tuple[Message, ...], str]:
    text = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
    return (Message("user", text),), record["output"]


def take(records: list[dict], per_split: int, seed: int) -> list[dict]:
    """Up to ``per_split`` records of each split, in a seeded random order."""
    rng = np.random.default_rng(seed)
    chosen = []
    for split in ("fit", "test"):
        pool = [r for r in records if split_of(r["id"]) == split]
        order = rng.permutation(len(pool))[:per_split]
        chosen += [pool[i] for i in sorted(order)]
    return chosen


def corpora(external: Path, sizes: dict[str, int]) -> dict[str, dict]:
    """{corpus: {"ids", "splits", "prompts", "answers": {kind: [y]}}}"""
    out: dict[str, dict] = {}

    def add(name: str, rows: list[tuple[str, tuple[Message, ...], dict[str, str]]]) -> None:
        out[name] = {
            "ids": [r[0] for r in rows],
            "splits": [split_of(r[0]) for r in rows],
            "prompts": [r[1] for r in rows],
            "answers": {kind: [r[2][kind] for r in rows] for kind in rows[0][2]},
        }

    for name, file in (
        ("halueval_clean", "halueval_general_clean.jsonl"),
        ("halueval_hallucinated", "halueval_general_hallucinated.jsonl"),
    ):
        rows = []
        for record in take(read_external(external, file), sizes[name], seed=1):
            prompt, answer = chat_prompt(record)
            rows.append((record["id"], prompt, {"y": answer}))
        add(name, rows)
    chosen = read_external(external, "hh_rlhf_harmless_chosen.jsonl")
    rejected = {r["id"]: r for r in read_external(external, "hh_rlhf_harmless_rejected.jsonl")}
    rows = []
    for record in take(chosen, sizes["hh_rlhf"], seed=2):
        prompt, answer = chat_prompt(record)
        _, bad = chat_prompt(rejected[record["id"]])
        rows.append((record["id"], prompt, {"chosen": answer, "rejected": bad}))
    add("hh_rlhf", rows)
    rows = []
    for record in take(read_external(external, "self_instruct_user_oriented.jsonl"), 10**6, seed=3):
        prompt, answer = alpaca_prompt(record)
        rows.append((record["id"], prompt, {"y": answer}))
    add("self_instruct", rows)
    for trait in TRAITS:
        definition = load_trait(shipped_trait_path(trait))
        rows = []
        for part, pairs in (("extraction", definition.pairs), ("calibration", definition.calibration)):
            for pair in pairs:
                rows.append(
                    (
                        f"{trait}/{part}/{pair.id}",
                        pair.prompt,
                        {"positive": pair.positive, "negative": pair.negative},
                    )
                )
        add(f"trait_{trait}", rows)
        out[f"trait_{trait}"]["splits"] = [r[0].split("/")[1] for r in rows]
        out[f"trait_{trait}"]["styles"] = [
            p.style for _, ps in (("e", definition.pairs), ("c", definition.calibration)) for p in ps
        ]
    return out


def pair_corpora(files: list[Path]) -> dict[str, dict]:
    """Corpora of own written pairs (JSONL: id, style, messages, positive, negative)."""
    out = {}
    for file in files:
        records = read_external(file.parent, file.name)
        out[file.stem] = {
            "ids": [r["id"] for r in records],
            "splits": [file.stem.split("_")[0]] * len(records),
            "styles": [r["style"] for r in records],
            "prompts": [tuple(Message(m["role"], m["content"]) for m in r["messages"]) for r in records],
            "answers": {kind: [r[kind] for r in records] for kind in ("positive", "negative")},
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--external", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "external"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--cache-dir", default=".persona-lint-cache")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--halueval-clean", type=int, default=300)
    parser.add_argument("--halueval-hallucinated", type=int, default=150)
    parser.add_argument("--hh-rlhf", type=int, default=200)
    parser.add_argument("--pairs", type=Path, nargs="*", default=[], help="own pair files (JSONL)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = {
        "halueval_clean": args.halueval_clean,
        "halueval_hallucinated": args.halueval_hallucinated,
        "hh_rlhf": args.hh_rlhf,
    }
    loaded = load_model(resolve_model("smollm2-135m-instruct"))
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=0.0, seed=0)
    layers = list(range(LAST_LAYER + 1))
    every = pair_corpora(args.pairs) if args.pairs else corpora(args.external, sizes)
    for name, corpus in every.items():
        if args.only and name not in args.only:
            continue
        target = args.out / f"{name}.npz"
        if target.exists():
            continue
        started = time.time()
        generations, _ = generate_y_prime(
            loaded, corpus["prompts"], settings, cache_dir=args.cache_dir, batch_size=32
        )
        answers = {**corpus["answers"], "y_prime": [g.text for g in generations]}
        arrays: dict[str, np.ndarray] = {}
        for kind, texts in answers.items():
            pairs = [
                encode_pair(loaded.tokenizer, p, t or " ", max_tokens=loaded.context_length)
                for p, t in zip(corpus["prompts"], texts, strict=True)
            ]
            acts = np.zeros((len(pairs), len(layers), loaded.hidden_size), dtype=np.float32)
            for batch, means in iter_mean_activations(loaded, pairs, layers, batch_size=16):
                for layer in layers:
                    acts[batch, layer] = means[layer].cpu().numpy()
            arrays[f"acts_{kind}"] = acts
            arrays[f"ntok_{kind}"] = np.array([p.n_response_tokens for p in pairs])
        meta = {
            "ids": corpus["ids"],
            "splits": corpus["splits"],
            "styles": corpus.get("styles"),
            "y_prime": answers["y_prime"],
            "y_prime_hit_limit": [g.hit_token_limit for g in generations],
            "max_new_tokens": args.max_new_tokens,
        }
        np.savez(target.with_suffix(".tmp.npz"), meta=json.dumps(meta), **arrays)
        target.with_suffix(".tmp.npz").rename(target)
        print(f"{name}: {len(corpus['ids'])} records in {time.time() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
