"""y' for every prompt: from the cache where possible, else from the backend, committed per batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from datalint_persona.backends import GenerationBackend, GenerationSettings
from datalint_persona.cache import GenerationCache, generation_key
from datalint_persona.types import Generation, Message

if TYPE_CHECKING:
    from datalint_persona.models import LoadedModel

ProgressCallback = Callable[[str, int, int], None]

MIN_AUTO_NEW_TOKENS = 16
MAX_AUTO_NEW_TOKENS = 512


def auto_max_new_tokens(response_token_counts: Sequence[int]) -> int:
    """Pick y's budget from the dataset's own response lengths: their 95th percentile, in [16, 512].

    >>> auto_max_new_tokens([10, 40, 80, 120])
    114
    """
    if not response_token_counts:
        return MIN_AUTO_NEW_TOKENS
    p95 = int(np.ceil(np.percentile(np.asarray(response_token_counts, dtype=np.float64), 95)))
    return int(min(max(p95, MIN_AUTO_NEW_TOKENS), MAX_AUTO_NEW_TOKENS))


def auto_max_new_tokens_for(loaded: LoadedModel, responses: Iterable[str]) -> int:
    """:func:`auto_max_new_tokens` of the responses' lengths in the model's own tokens."""
    tokenizer = loaded.tokenizer
    return auto_max_new_tokens([len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses])


def generate_with_cache(
    backend: GenerationBackend,
    cache: GenerationCache,
    model_identity: str,
    prompts: Sequence[str],
    settings: GenerationSettings,
    *,
    batch_size: int,
    progress: ProgressCallback | None = None,
) -> list[Generation]:
    """Return y' for each prompt in order. Identical prompts are generated once."""
    keys = [generation_key(model_identity, backend.name, p, settings.as_dict()) for p in prompts]
    known = cache.get_many(dict.fromkeys(keys))
    todo_keys = [k for k in dict.fromkeys(keys) if k not in known]
    prompt_of = dict(zip(keys, prompts, strict=True))
    total = len(todo_keys)
    if progress:
        progress("generate", 0, total)
    done = 0
    if todo_keys:
        todo_prompts = [prompt_of[k] for k in todo_keys]
        for indices, generations in backend.generate(todo_prompts, settings, batch_size=batch_size):
            fresh = {todo_keys[i]: g for i, g in zip(indices, generations, strict=True)}
            cache.put_many(fresh)
            known.update(fresh)
            done += len(fresh)
            if progress:
                progress("generate", done, total)
    return [known[k] for k in keys]


def generate_y_prime(
    loaded: LoadedModel,
    prompts: Sequence[Sequence[Message]],
    settings: GenerationSettings,
    *,
    backend: str | GenerationBackend = "transformers",
    cache_dir: str | None = None,
    batch_size: int = 16,
    tensor_parallel_size: int = 1,
    progress: ProgressCallback | None = None,
) -> tuple[list[Generation], GenerationCache]:
    """The base model's own answer to each prompt, rendered with its chat template.

    ``backend`` is a backend's name or one built by :func:`make_backend` (a run that generates in
    chunks builds it once, and asks it to record projections). Returns the generations and the
    (closed) cache, whose ``stats`` and ``warnings`` say what was reused. Generations reused from
    the cache never carry recorded projections.
    """
    from datalint_persona.backends import make_backend
    from datalint_persona.chat import render_prompt

    rendered = [render_prompt(loaded.tokenizer, p) for p in prompts]
    cache = GenerationCache(cache_dir)
    try:
        chosen = (
            make_backend(backend, loaded, tensor_parallel_size=tensor_parallel_size)
            if isinstance(backend, str)
            else backend
        )
        generations = generate_with_cache(
            chosen, cache, loaded.identity, rendered, settings, batch_size=batch_size, progress=progress
        )
    finally:
        cache.close()
    return generations, cache
