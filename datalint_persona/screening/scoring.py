"""Project mean response activations onto persona directions, and score each sample from them:
ΔP = proj(x, y) - proj(x, y') against the rule's reference, and its z against the calibration."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from datalint_persona.model.activations import ForwardWork, iter_mean_activations
from datalint_persona.model.chat import EncodedPair, encode_pair
from datalint_persona.screening.projection_cache import ProjectionCache, pair_key, pair_scope
from datalint_persona.screening.reference import Reference
from datalint_persona.stats import CleanNull
from datalint_persona.types import (
    Direction,
    Message,
    RecordedProjections,
    RuleInfo,
    Sample,
    SampleScore,
    TraitScore,
    token_digest,
)

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel


def project_pairs(
    loaded: LoadedModel,
    pairs: Sequence[EncodedPair],
    directions: Sequence[Direction],
    *,
    batch_size: int = 16,
    token_budget: int = 8192,
    share_prefix: bool = True,
    work: ForwardWork | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> np.ndarray:
    """Return (len(pairs), len(directions)): each pair's mean response activation · each unit vector.

    Every layer that any direction needs is captured in the same forward pass, which stops after
    the deepest of them.
    """
    import torch

    layers = sorted({d.layer for d in directions})
    # One (hidden, k) matrix per layer, so each layer's projections are one matmul.
    columns = {layer: [i for i, d in enumerate(directions) if d.layer == layer] for layer in layers}
    matrices = {
        layer: torch.tensor(np.stack([directions[i].unit for i in idx], axis=1), dtype=torch.float64)
        for layer, idx in columns.items()
    }
    out = np.zeros((len(pairs), len(directions)), dtype=np.float64)
    done = 0
    if progress:
        progress("score", 0, len(pairs))
    for batch, means in iter_mean_activations(
        loaded,
        pairs,
        layers,
        batch_size=batch_size,
        token_budget=token_budget,
        share_prefix=share_prefix,
        work=work,
    ):
        for layer, idx in columns.items():
            # (b, hidden) @ (hidden, k) -> (b, k)
            projected = means[layer].double().cpu() @ matrices[layer]
            out[np.ix_(batch, idx)] = projected.numpy()
        done += len(batch)
        if progress:
            progress("score", done, len(pairs))
    return out


@dataclass
class ScoringStats:
    """What one :func:`project_responses` call did: pairs reused from the cache, taken from
    generation-time activations, and run through the model."""

    reused: int = 0
    from_generation: int = 0
    forwarded: int = 0
    work: ForwardWork = field(default_factory=ForwardWork)

    def as_dict(self) -> dict[str, int]:
        return {
            "projections_reused": self.reused,
            "y_prime_from_generation": self.from_generation,
            "pairs_forwarded": self.forwarded,
            "tokens_run": self.work.tokens,
            "attention_pairs_run": self.work.attention_pairs,
        }


def recorded_matches(pair: EncodedPair, recorded: RecordedProjections, direction_keys: Sequence[str]) -> bool:
    """True when ``recorded`` holds these directions, and the scored tokens of ``pair`` are exactly
    the tokens the recording saw.

    The decoded, stripped y' is re-tokenized inside the chat template for scoring, which may merge
    or drop tokens differently from generation; then the recording is not used.
    """
    n, start = recorded.n_tokens, recorded.response_start
    return (
        recorded.direction_keys == tuple(direction_keys)
        and not pair.truncated
        and pair.needed_length == n
        and pair.response_mask[:n] == (False,) * start + (True,) * (n - start)
        and token_digest(pair.input_ids[:n]) == recorded.tokens_sha256
    )


def project_responses(
    loaded: LoadedModel,
    prompts: Sequence[Sequence[Message]],
    responses: Sequence[str],
    directions: Sequence[Direction],
    *,
    max_tokens: int,
    batch_size: int = 16,
    token_budget: int | None = None,
    cache: ProjectionCache | None = None,
    recorded: Sequence[RecordedProjections | None] | None = None,
    stats: ScoringStats | None = None,
    chunk_size: int = 4096,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[np.ndarray, list[bool]]:
    """Projections (len(responses), len(directions)) of each (prompt, response), and which were cut.

    An empty response (a y' that ended at once) is scored at its end-of-turn token (see
    :func:`~datalint_persona.model.chat.encode_pair`). With a ``cache``,
    pairs already projected onto the same unit vectors (same model, ``max_tokens``, prompt and
    response) are read from it and only the others run through the model; identical pairs in
    one call are scored once. ``recorded[i]``, when given, holds response i's projections recorded
    during generation; they replace its forward pass where its tokens match (:func:`recorded_matches`).
    Pairs are tokenized and scored ``chunk_size`` at a time, so memory beyond the per-pair
    projections does not grow with the number of pairs.
    """
    from datalint_persona.screening.model_facts import chat_template_sha256

    model_key = pair_scope(loaded.identity, chat_template_sha256(loaded.tokenizer))
    keys = [pair_key(model_key, max_tokens, p, r) for p, r in zip(prompts, responses, strict=True)]
    dkeys = [d.key for d in directions]
    known = cache.get_many(keys, dkeys) if cache is not None else {}
    todo = [k for k in dict.fromkeys(keys) if k not in known]
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    pending = _Pending(prompts, responses, recorded, first, dkeys)
    budget = token_budget or default_token_budget(batch_size, max_tokens)
    if progress:
        progress("score", 0, len(todo))
    # Chunks keep the token lists of at most ``chunk_size`` pairs in memory, and commit each
    # chunk's projections to the cache, so an interrupted run keeps what it scored.
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start : start + chunk_size]

        def report(_stage: str, done: int, _total: int, finished: int = start) -> None:
            if progress:
                progress("score", finished + done, len(todo))

        computed = _project_chunk(
            loaded, chunk, pending, directions, max_tokens, batch_size, budget, stats, report
        )
        if cache is not None:
            cache.put_many(computed, dkeys)
        known.update(computed)
    if stats is not None:
        stats.reused += len(set(keys)) - len(todo)
    out = np.array([known[k][0] for k in keys], dtype=np.float64).reshape(len(keys), len(directions))
    return out, [known[k][1] for k in keys]


@dataclass(frozen=True)
class _Pending:
    """The pairs of one :func:`project_responses` call, found by key: ``first[key]`` is the index
    of the first pair with that key."""

    prompts: Sequence[Sequence[Message]]
    responses: Sequence[str]
    recorded: Sequence[RecordedProjections | None] | None
    first: Mapping[str, int]
    direction_keys: Sequence[str]


def _project_chunk(
    loaded: LoadedModel,
    chunk: Sequence[str],
    pending: _Pending,
    directions: Sequence[Direction],
    max_tokens: int,
    batch_size: int,
    token_budget: int,
    stats: ScoringStats | None,
    progress: Callable[[str, int, int], None],
) -> dict[str, tuple[list[float], bool]]:
    """``key -> (projections, truncated)`` of the chunk's pairs: from their generation-time
    recording where it matches, else from a forward pass."""
    encoded = {
        k: encode_pair(
            loaded.tokenizer,
            pending.prompts[pending.first[k]],
            pending.responses[pending.first[k]],
            max_tokens=max_tokens,
        )
        for k in chunk
    }
    computed: dict[str, tuple[list[float], bool]] = {}
    for k in chunk:
        recording = pending.recorded[pending.first[k]] if pending.recorded is not None else None
        if recording is not None and recorded_matches(encoded[k], recording, pending.direction_keys):
            computed[k] = (list(recording.values), False)
    forward = [k for k in chunk if k not in computed]
    n_recorded = len(computed)
    fresh = project_pairs(
        loaded,
        [encoded[k] for k in forward],
        directions,
        batch_size=batch_size,
        token_budget=token_budget,
        work=stats.work if stats is not None else None,
        progress=lambda stage, done, total: progress(stage, n_recorded + done, total),
    )
    computed.update(
        {k: ([float(v) for v in fresh[row]], encoded[k].truncated) for row, k in enumerate(forward)}
    )
    if stats is not None:
        stats.from_generation += len(chunk) - len(forward)
        stats.forwarded += len(forward)
    return computed


def trait_score(
    rule: RuleInfo, projection_y: float, projection_y_prime: float, length: int | None = None
) -> TraitScore:
    """One trait's score of a sample: ΔP = proj(x, y) - proj(x, y') against the rule's reference,
    and its z against the vector's calibration (None without one), at the clean null's scale for
    a response of ``length`` characters.

    >>> rule = RuleInfo("persona-lint/evil", "evil", "evil", "", "error", 3, None, None, "")
    >>> trait_score(rule, 2.0, 0.5).delta_p
    1.5
    """
    reference = Reference(rule.reference_weight, rule.reference_mean)
    delta = float(reference.delta_p(projection_y, projection_y_prime))
    z = None
    if rule.calibration_mean is not None and rule.calibration_std:
        null = CleanNull(
            rule.null_df or 0.0, rule.calibration_mean, rule.calibration_std, rule.null_length_scale
        )
        z = null.z(delta, length)
    return TraitScore(rule.trait, rule.layer, float(projection_y), float(projection_y_prime), delta, z)


def sample_score(
    index: int,
    sample: Sample,
    y_prime: str,
    hit_limit: bool,
    truncated: bool,
    projection_y: np.ndarray,
    projection_y_prime: np.ndarray,
    rules: Sequence[RuleInfo],
) -> SampleScore:
    """A sample's scores over every rule; ``projection_y[j]`` and ``projection_y_prime[j]`` are its
    y and y' projections on rule j's direction (its global ``index`` numbers it in the run)."""
    trait_scores = tuple(
        trait_score(
            rule, float(projection_y[column]), float(projection_y_prime[column]), sample.response_length
        )
        for column, rule in enumerate(rules)
    )
    return SampleScore(sample, index, y_prime, hit_limit, truncated, trait_scores)


def default_token_budget(batch_size: int, max_tokens: int) -> int:
    """Padded tokens per scoring batch: 512 per row of ``batch_size``, and at least one full-length row."""
    return max(batch_size * 512, max_tokens)


__all__ = [
    "Direction",
    "ScoringStats",
    "default_token_budget",
    "project_pairs",
    "project_responses",
    "recorded_matches",
    "sample_score",
    "trait_score",
]
