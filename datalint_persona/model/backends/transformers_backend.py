"""y' generation with transformers on CPU or GPU: batched, left-padded, with an explicit mask."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona.errors import PersonaLintError
from datalint_persona.model.activations import length_sorted_batches
from datalint_persona.model.backends.base import GenerationSettings, sample_seed
from datalint_persona.model.backends.decode_progress import DecodeProgress
from datalint_persona.model.capture import record_last_positions
from datalint_persona.types import Direction, Generation, RecordedProjections, token_digest

if TYPE_CHECKING:
    import torch

    from datalint_persona.model.loading import LoadedModel


# A batch takes prompts up to this many times the median length before a longer one is split off.
PROMPT_SLACK = 4


def generation_token_budget(lengths: Sequence[int], max_new_tokens: int, *, batch_size: int) -> int:
    """Padded tokens one generate() batch may hold: ``batch_size`` rows of prompts up to
    ``PROMPT_SLACK`` times the median length, each with room for its ``max_new_tokens``.

    From the median, not the longest prompt: a budget from the longest never closes a batch, so
    one long prompt made its whole batch pad to its length (16 rows of 1,350 tokens for 3,045 real
    ones). The slack keeps ordinary spreads of length together: every batch decodes for up to
    ``max_new_tokens`` steps, so more, smaller batches cost more than their padding saves (48
    instruction prompts of 41 to 425 tokens, 96 new tokens: 118 s split at 1x the median, 100 s at
    4x, 103 s unsplit). The budget is never larger than the old one.

    >>> generation_token_budget([10, 20, 1000], 4, batch_size=16)
    1344
    """
    median = statistics.median_low(lengths or [0])
    return min(
        batch_size * (PROMPT_SLACK * median + max_new_tokens),
        batch_size * (max(lengths, default=0) + max_new_tokens),
    )


def generation_batches(
    lengths: Sequence[int], max_new_tokens: int, *, batch_size: int
) -> Iterator[list[int]]:
    """Indices of prompts of these token lengths, grouped for generate(): sorted by length, at most
    ``batch_size`` rows, and at most :func:`generation_token_budget` padded tokens, where a batch
    costs rows x (its longest prompt + ``max_new_tokens``). A prompt that alone exceeds the budget
    runs alone. Batches of short prompts hold ``batch_size`` rows; longer ones hold fewer.

    >>> list(generation_batches([5, 5, 400, 4, 5], 2, batch_size=4))  # budget 4 x (4 x 5 + 2) = 88
    [[3, 0, 1, 4], [2]]
    """
    budget = generation_token_budget(lengths, max_new_tokens, batch_size=batch_size)
    # Adding max_new_tokens to every length keeps the order and makes length_sorted_batches'
    # rows x longest the cost of prompt and y' together.
    costs = [n + max_new_tokens for n in lengths]
    return length_sorted_batches(costs, batch_size=batch_size, token_budget=budget)


class TransformersBackend:
    """Greedy by default. Prompts are batched by length to cut padding (see
    :func:`generation_batches`).

    The tokenizer's pad id may equal its end-of-turn id (SmolLM2: both are 2), so the attention mask
    is always passed explicitly and never derived from ``ids != pad_id``.

    With ``record_directions``, each generation also carries the projections of its tokens' mean
    activation onto those unit vectors, recorded as the tokens are fed back (so scoring need not
    run y' through the model again). That takes one decode step more than ``max_new_tokens``,
    whose token is discarded: the last kept token is fed once. The texts do not change.

    With ``progress``, each batch reports its decoding steps as they happen
    (:class:`~datalint_persona.model.backends.decode_progress.DecodeProgress`); the tokens do not
    change either.
    """

    name = "transformers"

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        record_directions: Sequence[Direction] = (),
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.loaded = loaded
        self.record_directions = tuple(record_directions)
        self.progress = progress
        self._direction_keys = tuple(
            d.key for d in self.record_directions
        )  # a sha256 each: once, not per sample

    def generate(
        self, prompts: Sequence[str], settings: GenerationSettings, *, batch_size: int
    ) -> Iterator[tuple[list[int], list[Generation]]]:
        tokenizer = self.loaded.tokenizer
        eos_ids = stop_token_ids(self.loaded)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
        # int32 arrays: a list of Python ints costs about 36 bytes a token, for every prompt of the run
        encoded = [
            np.asarray(tokenizer(p, add_special_tokens=False)["input_ids"], dtype=np.int32) for p in prompts
        ]
        lengths = [len(ids) for ids in encoded]
        _check_context(self.loaded, max(lengths, default=0), settings.max_new_tokens)
        for batch in generation_batches(lengths, settings.max_new_tokens, batch_size=batch_size):
            # Sampling draws each row's tokens from the row's own generator (see sample_seed).
            seeds = (
                [sample_seed(settings.seed, prompts[i]) for i in batch] if settings.temperature > 0 else []
            )
            rows = [encoded[i] for i in batch]
            yield batch, self._generate_batch(rows, seeds, settings, pad_id, eos_ids)

    def _generate_batch(
        self,
        encoded: Sequence[np.ndarray],
        seeds: Sequence[int],
        settings: GenerationSettings,
        pad_id: int,
        eos_ids: list[int],
    ) -> list[Generation]:
        """One left-padded batch through ``model.generate``, each row's y' with its projections.

        ``seeds`` holds each row's sampling seed (empty when greedy)."""
        import torch

        model: Any = self.loaded.model  # its stubs don't type generate()
        ids, attention = _left_padded(encoded, pad_id)
        longest = ids.shape[1]
        # generate() then picks each sampled token greedily: no draw depends on the batch's other rows.
        sampler = [_PerPromptSampler(seeds, settings)] if settings.temperature > 0 else []
        capture = bool(self.record_directions)
        recorder: AbstractContextManager[dict[int, list[torch.Tensor]]] = (
            record_last_positions(model, [d.layer for d in self.record_directions])
            if capture
            else nullcontext({})
        )
        streamer = DecodeProgress(self.progress, settings.max_new_tokens) if self.progress else None
        with torch.inference_mode(), recorder as recorded:
            output = model.generate(
                input_ids=ids.to(self.loaded.device),
                attention_mask=attention.to(self.loaded.device),
                max_new_tokens=settings.max_new_tokens + (1 if capture else 0),
                do_sample=False,
                logits_processor=sampler,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=pad_id,
                eos_token_id=eos_ids,
                streamer=streamer,
            )
        new_tokens = [row[: settings.max_new_tokens] for row in output[:, longest:].tolist()]
        generations = [_to_generation(self.loaded, row, eos_ids) for row in new_tokens]
        if not capture:
            return generations
        return [
            _with_projections(
                g,
                encoded[row].tolist(),
                new_tokens[row],
                recorded,
                row,
                self.record_directions,
                self._direction_keys,
            )
            for row, g in enumerate(generations)
        ]


def _left_padded(encoded: Sequence[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, longest) token ids padded on the left with ``pad_id``, and the explicit attention mask.

    >>> ids, mask = _left_padded([np.array([5, 6]), np.array([7])], 0)
    >>> ids.tolist(), mask.tolist()
    ([[5, 6], [0, 7]], [[1, 1], [0, 1]])
    """
    import torch

    longest = max(len(row) for row in encoded)
    ids = torch.full((len(encoded), longest), pad_id, dtype=torch.long)
    attention = torch.zeros((len(encoded), longest), dtype=torch.long)
    for row, tokens in enumerate(encoded):
        n = len(tokens)
        ids[row, longest - n :] = torch.from_numpy(tokens)
        attention[row, longest - n :] = 1
    return ids, attention


class _PerPromptSampler:
    """A logits processor that samples each row's next token with that row's own generator
    (temperature, then nucleus ``top_p``) and leaves only that token possible.

    A processor rather than ``do_sample``: generate() samples a batch from one global generator,
    so a row's draws would depend on the rows beside it.
    """

    def __init__(self, seeds: Sequence[int], settings: GenerationSettings) -> None:
        import torch

        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        self.temperature = settings.temperature
        self.top_p = settings.top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        # (batch, vocab) logits -> (batch, vocab) probabilities, in float32 on the CPU
        probabilities = torch.softmax(scores.float().cpu() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            probabilities = nucleus(probabilities, self.top_p)
        chosen = torch.cat(
            [
                torch.multinomial(probabilities[row], 1, generator=generator)
                for row, generator in enumerate(self.generators)
            ]
        ).to(scores.device)
        only = torch.full_like(scores, float("-inf"))
        return only.scatter(1, chosen.unsqueeze(1), 0.0)


def nucleus(probabilities: torch.Tensor, top_p: float) -> torch.Tensor:
    """(batch, vocab) -> (batch, vocab): keep, per row, the most likely tokens whose total
    probability first reaches ``top_p`` (at least one), renormalized.

    >>> import torch
    >>> nucleus(torch.tensor([[0.5, 0.3, 0.2]]), 0.7).tolist()
    [[0.625, 0.375, 0.0]]
    """
    import torch

    ordered, order = probabilities.sort(dim=-1, descending=True)
    before = ordered.cumsum(dim=-1) - ordered  # the mass of the more likely tokens
    ordered = torch.where(before < top_p, ordered, torch.zeros_like(ordered))
    kept = torch.zeros_like(probabilities).scatter(-1, order, ordered)
    return kept / kept.sum(dim=-1, keepdim=True)


def _check_context(loaded: LoadedModel, longest_prompt: int, max_new_tokens: int) -> None:
    """A prompt and its y' must fit in the model's context; positions beyond it crash or mislead."""
    context = loaded.context_length
    if longest_prompt + max_new_tokens > context:
        raise PersonaLintError(
            f"A rendered prompt has {longest_prompt} tokens, which with {max_new_tokens} new tokens "
            f"exceeds the model's context of {context} tokens.",
            fix="cut the prompts to fit (persona-lint screen does, see fit_prompt), or lower --max-new-tokens.",
        )


def _with_projections(
    generation: Generation,
    prompt_ids: list[int],
    new_tokens: list[int],
    recorded: dict[int, list[torch.Tensor]],
    row: int,
    directions: Sequence[Direction],
    direction_keys: tuple[str, ...],
) -> Generation:
    """Attach the projections of the mean activation over the kept tokens (fed at forward calls
    1..n_tokens; call 0 is the prompt's), computed as scoring computes them."""
    import dataclasses

    import torch

    n = generation.n_tokens
    if n == 0 or any(len(steps) < n + 1 for steps in recorded.values()):
        return generation  # nothing to average, or a generate() that fed fewer tokens: score it later
    # n x (batch, d) -> (n, d) -> (d,), in float32 like the scoring pass's mean
    means = {
        layer: torch.stack([step[row] for step in steps[1 : n + 1]]).float().mean(dim=0).cpu()
        for layer, steps in recorded.items()
    }
    values = tuple(float(means[d.layer].double() @ torch.from_numpy(d.unit)) for d in directions)
    fed = [*prompt_ids, *new_tokens[:n]]
    projections = RecordedProjections(token_digest(fed), len(fed), len(prompt_ids), direction_keys, values)
    return dataclasses.replace(generation, recorded=projections)


def stop_token_ids(loaded: LoadedModel) -> list[int]:
    """The ids that end y': the generation config's end-of-sequence ids and the tokenizer's."""
    config_eos = loaded.model.generation_config.eos_token_id
    ids = config_eos if isinstance(config_eos, list) else [config_eos]
    tokenizer_eos = loaded.tokenizer.eos_token_id
    return [int(i) for i in dict.fromkeys([*ids, tokenizer_eos]) if i is not None]


def _to_generation(loaded: LoadedModel, tokens: list[int], eos_ids: list[int]) -> Generation:
    """Cut at the first end-of-sequence token; padding after it is not part of y'."""
    stop = next((i for i, token in enumerate(tokens) if token in eos_ids), None)
    kept = tokens if stop is None else tokens[:stop]
    text = str(loaded.tokenizer.decode(kept, skip_special_tokens=True))
    return Generation(text=text.strip(), n_tokens=len(kept), hit_token_limit=stop is None)
