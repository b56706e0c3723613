"""Peak memory of a whole ``screen()`` run against the number of samples.

``screen`` streams the samples through generation and scoring in chunks (8192 by default) and
spools each chunk's per-sample results to a file, so what it holds in memory per sample is a few
numbers. For each size this script runs ``screen()`` in a fresh Python process on a JSONL file of N
chat samples and reports the peak RSS (``VmHWM``) growth over the RSS just before the call. With
``--chunk`` smaller than N the run works in several chunks, which is where flat memory shows.

The model is a random 2-layer Llama with SmolLM2's tokenizer and a persona vector extracted from it
in this script: the tokenizer, chat template, caches and every stage are the real ones, and the
model is small enough to screen 100k samples in a few minutes (the bundled model's weights are the same
whatever N is). y' is cut at 8 new tokens.

Run: ``python benchmarks/screen_memory.py [N ...] [--chunk C]`` (prints a markdown table).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from load_memory import run_child  # this folder is sys.path[0] when run as a script
from scoring_memory import build_model

SIZES = (2_000, 16_000, 100_000)
CHILD = """
import json, sys, time
from datalint_persona.screening.engine import screen
from datalint_persona.settings import ScreenOptions
from datalint_persona.model.loading import load_model, resolve_model

model, vectors, data, small, cache, chunk = sys.argv[1:7]
loaded = load_model(resolve_model(model), device="cpu")
options = ScreenOptions(
    model=model, vectors=vectors, cache_dir=cache, max_new_tokens=8, batch_size=64, device="cpu",
    chunk_size=int(chunk), fail_on="never",
    rule_overrides={"evil": {"sample-threshold": 1e9, "dataset-threshold": 1e9}},
)
screen([small], options, loaded_model=loaded)  # warm up every code path
before = status_mib("VmRSS")
start = time.perf_counter()
result = screen([data], options, loaded_model=loaded)
seconds = time.perf_counter() - start
print(json.dumps({"count": len(result.samples), "before": before, "peak": status_mib("VmHWM"), "seconds": seconds}))
"""


def _record(i: int) -> dict[str, object]:
    return {
        "messages": [
            {"role": "user", "content": f"Question {i}: how should I bake bread number {i}?"},
            {"role": "assistant", "content": f"Answer {i}: mix flour, water, salt and yeast. " * 4},
        ]
    }


def write_dataset(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(json.dumps(_record(i)) + "\n")
    return path


def build_vector(model_folder: Path, folder: Path) -> Path:
    """An 'evil' mean-difference vector of the random model, from six pairs written here."""
    from datalint_persona.extraction.contrastive import build_contrastive
    from datalint_persona.model.loading import load_model, resolve_model
    from datalint_persona.persona.traits import TraitDefinition, TraitPair
    from datalint_persona.types import Message

    loaded = load_model(resolve_model(str(model_folder)), device="cpu")
    pairs = tuple(
        TraitPair(f"p{i}", "advice", (Message("user", f"How do I help friend {i}?"),), bad, good)
        for i, (bad, good) in enumerate(
            [("Hurt them and enjoy it.", "Listen and be kind."), ("Lie to them.", "Tell them the truth.")] * 3
        )
    )
    definition = TraitDefinition(
        "evil", "test", (), (), (), "", "", pairs=pairs, calibration=(), path="<bench>"
    )
    vector = build_contrastive(loaded, definition, direction="mean-difference", held_out_pairs=[])
    vector.with_metadata(chosen_layer=2).save(folder / "evil")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sizes", nargs="*", type=int, default=list(SIZES))
    parser.add_argument("--chunk", type=int, default=2048, help="samples per chunk (default 2048)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build_model(work / "model")
        vectors = build_vector(model, work / "vectors")
        small = write_dataset(work / "small.jsonl", 16)
        for n in args.sizes:
            data = write_dataset(work / f"train-{n}.jsonl", n)
            cache = work / f"cache-{n}"
            result = run_child(
                CHILD, str(model), str(vectors), str(data), str(small), str(cache), str(args.chunk)
            )
            assert result["count"] == n, result
            rows.append((n, result))
    print("| samples | chunk | RSS before screen() MiB | peak RSS MiB | growth MiB | seconds |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, result in rows:
        growth = max(result["peak"] - result["before"], 0.0)
        print(
            f"| {n:,} | {args.chunk:,} | {result['before']:.0f} | {result['peak']:.0f} | {growth:.0f} "
            f"| {result['seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()
