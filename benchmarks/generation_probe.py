"""One timed run of the engine's generation path, in a process of its own (the screening
benchmark runs it under a timeout, for variants that may be slow or fail).

    python benchmarks/generation_probe.py prompts.json --batch-size 16 --max-new-tokens 96 \
        --cache-implementation static

``prompts.json`` holds a list of rendered prompts. Loads the embedded model in ``--dtype`` (default
``auto``), sets ``generation_config.cache_implementation`` when given, generates every prompt with
``TransformersBackend`` (recording nothing) and prints one JSON line: seconds (generation only),
useful tokens (each y' plus its end-of-sequence token where it stopped), and each y''s sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("prompts", type=Path)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--cache-implementation", default=None)
    args = parser.parse_args()

    from datalint_persona.model.backends import GenerationSettings
    from datalint_persona.model.backends.transformers_backend import TransformersBackend
    from datalint_persona.model.loading import load_model, resolve_model

    prompts = json.loads(args.prompts.read_text(encoding="utf-8"))
    loaded = load_model(resolve_model("smollm2-135m-instruct"), device="cpu", dtype=args.dtype)
    if args.cache_implementation:
        loaded.model.generation_config.cache_implementation = args.cache_implementation
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    start = time.perf_counter()
    generations = [
        g
        for _, batch in TransformersBackend(loaded).generate(prompts, settings, batch_size=args.batch_size)
        for g in batch
    ]
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "tokens": sum(g.n_tokens + (0 if g.hit_token_limit else 1) for g in generations),
                "dtype": str(loaded.model.dtype).removeprefix("torch."),
                "texts": sorted(hashlib.sha256(g.text.encode()).hexdigest() for g in generations),
            }
        )
    )


if __name__ == "__main__":
    main()
