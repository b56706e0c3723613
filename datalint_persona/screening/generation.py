"""y' for every prompt: from the cache where possible, else from the backend, committed per batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from datalint_persona.model.backends import GenerationBackend, GenerationSettings
from datalint_persona.screening.answer_cache import GenerationCache, generation_key
from datalint_persona.types import Generation, Message

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel
    from datalint_persona.persona.vectors import PersonaVector

ProgressCallback = Callable[[str, int, int], None]
# Reported after each generated batch once a y' has reached max_new_tokens: (y' cut so far,
# y' generated so far), so a display can warn at once rather than in the final report.
CUT_STAGE = "y-prime-cut"

# y' budget of vectors whose sidecar records none, and of new calibrations.
DEFAULT_MAX_NEW_TOKENS = 96


@dataclass(frozen=True)
class CalibratedGeneration:
    """The y' settings the vectors' verdicts were calibrated with (from their sidecars).

    ΔP depends on y', so thresholds, nulls and margins carry over only to runs that generate y'
    the same way.
    """

    max_new_tokens: int
    temperature: float
    recorded: bool  # False: no sidecar said, and the documented default is assumed

    def mismatch_warnings(self, settings: GenerationSettings) -> list[str]:
        """A warning for each run setting that differs from the calibration's."""
        warnings = []
        if settings.max_new_tokens != self.max_new_tokens:
            warnings.append(
                f"--max-new-tokens {settings.max_new_tokens}: the vectors were calibrated with y' of at most "
                f"{self.max_new_tokens} tokens, so their nulls and margins are approximate for this run."
            )
        if settings.temperature != self.temperature:
            warnings.append(
                f"--temperature {settings.temperature:g}: the vectors were calibrated with temperature "
                f"{self.temperature:g}, so their nulls and margins are approximate for this run."
            )
        return warnings


def calibrated_generation(vectors: Sequence[PersonaVector]) -> CalibratedGeneration:
    """The y' settings recorded in the vectors' calibration (the most common, if they differ).

    >>> calibrated_generation([]).max_new_tokens == DEFAULT_MAX_NEW_TOKENS
    True
    """
    recorded = [vector.calibration.y_prime for vector in vectors if vector.calibration.y_prime is not None]
    if not recorded:
        return CalibratedGeneration(DEFAULT_MAX_NEW_TOKENS, 0.0, recorded=False)
    (max_new, temperature), _ = Counter(recorded).most_common(1)[0]
    return CalibratedGeneration(max_new, temperature, recorded=True)


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
    """Return y' for each prompt in order. Identical prompts are generated once.

    ``progress`` gets ``("generate", done, total)`` after each batch, and ``(CUT_STAGE, cut,
    done)`` after each batch once a freshly generated y' has hit ``max_new_tokens``.
    """
    keys = [generation_key(model_identity, backend.name, p, settings.as_dict()) for p in prompts]
    known = cache.get_many(dict.fromkeys(keys))
    todo_keys = [k for k in dict.fromkeys(keys) if k not in known]
    prompt_of = dict(zip(keys, prompts, strict=True))
    total = len(todo_keys)
    if progress:
        progress("generate", 0, total)
    done = cut = 0
    if todo_keys:
        todo_prompts = [prompt_of[k] for k in todo_keys]
        for indices, generations in backend.generate(todo_prompts, settings, batch_size=batch_size):
            fresh = {todo_keys[i]: g for i, g in zip(indices, generations, strict=True)}
            cache.put_many(fresh)
            known.update(fresh)
            done += len(fresh)
            cut += sum(g.hit_token_limit for g in fresh.values())
            if progress:
                progress("generate", done, total)
                if cut:
                    progress(CUT_STAGE, cut, done)
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
    from datalint_persona.model.backends import make_backend
    from datalint_persona.model.chat import render_prompt
    from datalint_persona.screening.cache_identity import cache_identity

    rendered = [render_prompt(loaded.tokenizer, p) for p in prompts]
    cache = GenerationCache(cache_dir)
    try:
        chosen = (
            make_backend(backend, loaded, tensor_parallel_size=tensor_parallel_size)
            if isinstance(backend, str)
            else backend
        )
        # The key holds what changes y' beyond the weights: device, dtype, tokenizer, configs.
        identity = cache_identity(loaded) if cache_dir is not None else loaded.identity
        generations = generate_with_cache(
            chosen, cache, identity, rendered, settings, batch_size=batch_size, progress=progress
        )
    finally:
        cache.close()
    return generations, cache
