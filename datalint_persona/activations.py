"""Mean response-token activations, batched by length with right padding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from datalint_persona.capture import forward_to_layers
from datalint_persona.chat import EncodedPair

if TYPE_CHECKING:
    import torch

    from datalint_persona.models import LoadedModel


def length_sorted_batches(
    lengths: Sequence[int], *, batch_size: int, token_budget: int
) -> Iterator[list[int]]:
    """Group indices of similar length; a batch holds at most ``batch_size`` rows and
    ``token_budget`` padded tokens (so batches of short texts grow, batches of long ones shrink).

    >>> list(length_sorted_batches([5, 1, 4, 2], batch_size=2, token_budget=100))
    [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batch: list[int] = []
    for index in order:
        longest = lengths[index]  # sorted ascending, so the newest is the longest
        if batch and (len(batch) + 1 > batch_size or longest * (len(batch) + 1) > token_budget):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def pad_right(
    pairs: Sequence[EncodedPair], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, response_mask), each (batch, longest)."""
    import torch

    longest = max(len(p.input_ids) for p in pairs)
    ids = torch.full((len(pairs), longest), pad_id, dtype=torch.long)
    attention = torch.zeros((len(pairs), longest), dtype=torch.long)
    response = torch.zeros((len(pairs), longest), dtype=torch.bool)
    for row, pair in enumerate(pairs):
        n = len(pair.input_ids)
        ids[row, :n] = torch.tensor(pair.input_ids)
        attention[row, :n] = 1
        response[row, :n] = torch.tensor(pair.response_mask)
    return ids.to(device), attention.to(device), response.to(device)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch, seq, d_model), (batch, seq) -> (batch, d_model): mean over the masked positions."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def iter_mean_activations(
    loaded: LoadedModel,
    pairs: Sequence[EncodedPair],
    layers: Sequence[int],
    *,
    batch_size: int = 16,
    token_budget: int = 8192,
) -> Iterator[tuple[list[int], dict[int, torch.Tensor]]]:
    """Yield ``(indices, {layer: (len(indices), d_model)})`` batch by batch, in length order.

    Each row is the mean of ``hidden_states[layer]`` over that pair's response tokens.
    """
    pad_id = loaded.tokenizer.pad_token_id
    pad_id = 0 if pad_id is None else int(pad_id)
    lengths = [len(p.input_ids) for p in pairs]
    for batch in length_sorted_batches(lengths, batch_size=batch_size, token_budget=token_budget):
        ids, attention, response = pad_right([pairs[i] for i in batch], pad_id, loaded.device)
        captured = forward_to_layers(loaded.model, ids, attention, layers)
        yield batch, {layer: masked_mean(captured[layer], response).float() for layer in layers}
