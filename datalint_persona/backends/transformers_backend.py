"""y' generation with transformers on CPU or GPU: batched, left-padded, with an explicit mask."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from datalint_persona.activations import length_sorted_batches
from datalint_persona.backends.base import GenerationSettings
from datalint_persona.types import Generation

if TYPE_CHECKING:
    from datalint_persona.models import LoadedModel


class TransformersBackend:
    """Greedy by default. Prompts are batched by length to cut padding.

    The tokenizer's pad id may equal its end-of-turn id (SmolLM2: both are 2), so the attention mask
    is always passed explicitly and never derived from ``ids != pad_id``.
    """

    name = "transformers"

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded

    def generate(
        self, prompts: Sequence[str], settings: GenerationSettings, *, batch_size: int
    ) -> Iterator[tuple[list[int], list[Generation]]]:
        import torch

        tokenizer = self.loaded.tokenizer
        model: Any = self.loaded.model  # its stubs don't type generate()
        eos_ids = _eos_ids(self.loaded)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
        encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        lengths = [len(ids) for ids in encoded]
        budget = batch_size * (max(lengths, default=1) + settings.max_new_tokens)
        for batch in length_sorted_batches(lengths, batch_size=batch_size, token_budget=budget):
            longest = max(lengths[i] for i in batch)
            ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), longest), dtype=torch.long)
            for row, index in enumerate(batch):
                n = lengths[index]
                ids[row, longest - n :] = torch.tensor(encoded[index])
                attention[row, longest - n :] = 1
            sampling = settings.temperature > 0
            torch.manual_seed(settings.seed)
            with torch.inference_mode():
                output = model.generate(
                    input_ids=ids.to(self.loaded.device),
                    attention_mask=attention.to(self.loaded.device),
                    max_new_tokens=settings.max_new_tokens,
                    do_sample=sampling,
                    temperature=settings.temperature if sampling else None,
                    top_p=settings.top_p if sampling else None,
                    top_k=None,
                    pad_token_id=pad_id,
                    eos_token_id=eos_ids,
                )
            new_tokens = output[:, longest:].tolist()
            yield batch, [_to_generation(self.loaded, row, eos_ids) for row in new_tokens]


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
