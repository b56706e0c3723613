"""y' generation with transformers on CPU or GPU: batched, left-padded, with an explicit mask."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona.activations import length_sorted_batches
from datalint_persona.backends.base import GenerationSettings
from datalint_persona.capture import record_last_positions
from datalint_persona.types import Direction, Generation, RecordedProjections, token_digest

if TYPE_CHECKING:
    import torch

    from datalint_persona.models import LoadedModel


class TransformersBackend:
    """Greedy by default. Prompts are batched by length to cut padding.

    The tokenizer's pad id may equal its end-of-turn id (SmolLM2: both are 2), so the attention mask
    is always passed explicitly and never derived from ``ids != pad_id``.

    With ``record_directions``, each generation also carries the projections of its tokens' mean
    activation onto those unit vectors, recorded as the tokens are fed back (so scoring need not
    run y' through the model again). That takes one decode step more than ``max_new_tokens``,
    whose token is discarded: the last kept token is fed once. The texts do not change.
    """

    name = "transformers"

    def __init__(self, loaded: LoadedModel, *, record_directions: Sequence[Direction] = ()) -> None:
        self.loaded = loaded
        self.record_directions = tuple(record_directions)
        self._direction_keys = tuple(
            d.key for d in self.record_directions
        )  # a sha256 each: once, not per sample

    def generate(
        self, prompts: Sequence[str], settings: GenerationSettings, *, batch_size: int
    ) -> Iterator[tuple[list[int], list[Generation]]]:
        import torch

        tokenizer = self.loaded.tokenizer
        model: Any = self.loaded.model  # its stubs don't type generate()
        eos_ids = _eos_ids(self.loaded)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
        # int32 arrays: a list of Python ints costs about 36 bytes a token, for every prompt of the run
        encoded = [
            np.asarray(tokenizer(p, add_special_tokens=False)["input_ids"], dtype=np.int32) for p in prompts
        ]
        lengths = [len(ids) for ids in encoded]
        budget = batch_size * (max(lengths, default=1) + settings.max_new_tokens)
        for batch in length_sorted_batches(lengths, batch_size=batch_size, token_budget=budget):
            longest = max(lengths[i] for i in batch)
            ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), longest), dtype=torch.long)
            for row, index in enumerate(batch):
                n = lengths[index]
                ids[row, longest - n :] = torch.from_numpy(encoded[index])
                attention[row, longest - n :] = 1
            sampling = settings.temperature > 0
            torch.manual_seed(settings.seed)
            capture = bool(self.record_directions)
            recorder: AbstractContextManager[dict[int, list[torch.Tensor]]] = (
                record_last_positions(model, [d.layer for d in self.record_directions])
                if capture
                else nullcontext({})
            )
            with torch.inference_mode(), recorder as recorded:
                output = model.generate(
                    input_ids=ids.to(self.loaded.device),
                    attention_mask=attention.to(self.loaded.device),
                    max_new_tokens=settings.max_new_tokens + (1 if capture else 0),
                    do_sample=sampling,
                    temperature=settings.temperature if sampling else None,
                    top_p=settings.top_p if sampling else None,
                    top_k=None,
                    pad_token_id=pad_id,
                    eos_token_id=eos_ids,
                )
            new_tokens = [row[: settings.max_new_tokens] for row in output[:, longest:].tolist()]
            generations = [_to_generation(self.loaded, row, eos_ids) for row in new_tokens]
            if capture:
                generations = [
                    _with_projections(
                        g,
                        encoded[index].tolist(),
                        new_tokens[row],
                        recorded,
                        row,
                        self.record_directions,
                        self._direction_keys,
                    )
                    for row, (index, g) in enumerate(zip(batch, generations, strict=True))
                ]
            yield batch, generations


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


def _eos_ids(loaded: LoadedModel) -> list[int]:
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
