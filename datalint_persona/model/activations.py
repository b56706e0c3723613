"""Mean response-token activations, batched by length with right padding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from datalint_persona.model.capture import forward_to_layers, shared_prefix_length
from datalint_persona.model.chat import EncodedPair

if TYPE_CHECKING:
    import torch

    from datalint_persona.model.loading import LoadedModel


@dataclass
class ForwardWork:
    """Work done by forward passes: real tokens run (a shared prefix once per batch), and
    causal attention pairs (query, key) among them, padding excluded."""

    tokens: int = 0
    attention_pairs: int = 0

    def add_batch(self, lengths: Sequence[int], prefix: int) -> None:
        """Rows of these real lengths, whose first ``prefix`` tokens ran once for all of them."""
        # Token t attends to t + 1 positions, so tokens [a, b) make sum(t + 1) = (b(b+1) - a(a+1)) / 2 pairs.
        self.tokens += prefix + sum(n - prefix for n in lengths)
        self.attention_pairs += prefix * (prefix + 1) // 2
        self.attention_pairs += sum((n * (n + 1) - prefix * (prefix + 1)) // 2 for n in lengths)


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
    """(input_ids, attention_mask, response_mask), each (batch, longest); each row stops at its
    last response token (:attr:`EncodedPair.needed_length`)."""
    import torch

    longest = max(p.needed_length for p in pairs)
    ids = torch.full((len(pairs), longest), pad_id, dtype=torch.long)
    attention = torch.zeros((len(pairs), longest), dtype=torch.long)
    response = torch.zeros((len(pairs), longest), dtype=torch.bool)
    for row, pair in enumerate(pairs):
        n = pair.needed_length
        ids[row, :n] = torch.tensor(pair.input_ids[:n])
        attention[row, :n] = 1
        response[row, :n] = torch.tensor(pair.response_mask[:n])
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
    share_prefix: bool = True,
    work: ForwardWork | None = None,
) -> Iterator[tuple[list[int], dict[int, torch.Tensor]]]:
    """Yield ``(indices, {layer: (len(indices), d_model)})`` batch by batch, in length order.

    Each row is the mean of ``hidden_states[layer]`` over that pair's response tokens. The
    tokens a batch's rows share at the start run once (see :func:`forward_to_layers`); ``work``,
    when given, adds up what ran.
    """
    pad_id = loaded.tokenizer.pad_token_id
    pad_id = 0 if pad_id is None else int(pad_id)
    lengths = [p.needed_length for p in pairs]
    for batch in length_sorted_batches(lengths, batch_size=batch_size, token_budget=token_budget):
        ids, attention, response = pad_right([pairs[i] for i in batch], pad_id, loaded.device)
        prefix = shared_prefix_length(ids, attention) if share_prefix else 0
        captured = forward_to_layers(loaded.model, ids, attention, layers, prefix=prefix)
        if work is not None:
            work.add_batch([lengths[i] for i in batch], prefix)
        yield batch, {layer: masked_mean(captured[layer], response).float() for layer in layers}
