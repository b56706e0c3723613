"""Last-prompt-token activations, and the finetuning shift along a persona vector.

The paper's monitoring and finetuning-shift measurements read the residual stream at the last token
of the rendered prompt (the token right before the answer starts), at the vector's layer.
Finetuning shift = mean over the trait's evaluation questions of
``(a_l^finetuned(x) - a_l^base(x)) . v_hat_l``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from datalint_persona.errors import MissingDependencyError, ModelError
from datalint_persona.model.activations import length_sorted_batches
from datalint_persona.model.capture import forward_to_layers
from datalint_persona.model.chat import render_prompt
from datalint_persona.model.steering import unwrap_model
from datalint_persona.types import Message

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel


def last_prompt_activations(
    loaded: LoadedModel, prompts: Sequence[Sequence[Message]], layer: int, *, batch_size: int = 16
) -> np.ndarray:
    """(len(prompts), hidden) float64: ``hidden_states[layer]`` at each rendered prompt's last token.

    Prompts are rendered with the chat template and its generation header, right-padded in
    length-sorted batches, and read at each row's own last real position.
    """
    import torch

    model = unwrap_model(loaded.model)
    encoded = [
        loaded.tokenizer(render_prompt(loaded.tokenizer, p), add_special_tokens=False)["input_ids"]
        for p in prompts
    ]
    pad_id = loaded.tokenizer.pad_token_id
    pad_id = 0 if pad_id is None else int(pad_id)
    out = np.zeros((len(prompts), loaded.hidden_size), dtype=np.float64)
    lengths = [len(ids) for ids in encoded]
    for batch in length_sorted_batches(lengths, batch_size=batch_size, token_budget=batch_size * 4096):
        longest = max(lengths[i] for i in batch)
        ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, index in enumerate(batch):
            ids[row, : lengths[index]] = torch.tensor(encoded[index])
            attention[row, : lengths[index]] = 1
        hidden = forward_to_layers(model, ids.to(loaded.device), attention.to(loaded.device), [layer])[layer]
        last = torch.tensor([lengths[i] - 1 for i in batch], device=hidden.device)
        # (b, seq, d) -> (b, d): each row at its own last prompt token.
        rows = hidden[torch.arange(len(batch), device=hidden.device), last]
        out[batch] = rows.double().cpu().numpy()
    return out


@dataclass(frozen=True)
class Shift:
    """Mean (and per question) change of the last-prompt-token projection onto v_hat."""

    trait: str
    layer: int
    mean: float
    std: float
    per_question: tuple[float, ...]
    base_projection_mean: float
    finetuned_projection_mean: float


def projection_shift(
    trait: str,
    layer: int,
    unit: np.ndarray,
    base_activations: np.ndarray,
    finetuned_activations: np.ndarray,
) -> Shift:
    """Per-question ``(finetuned - base) . unit`` and its mean."""
    base = base_activations @ unit
    finetuned = finetuned_activations @ unit
    per_question = finetuned - base
    return Shift(
        trait,
        layer,
        float(per_question.mean()),
        float(per_question.std(ddof=1)) if len(per_question) > 1 else 0.0,
        tuple(float(x) for x in per_question),
        float(base.mean()),
        float(finetuned.mean()),
    )


def is_adapter_dir(path: str) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def load_finetuned(base: LoadedModel, finetuned: str) -> LoadedModel:
    """The finetuned model: a PEFT adapter folder applied to (a copy of) ``base``, or any --model value."""
    from datalint_persona.model.loading import LoadedModel, load_model, resolve_model

    if not is_adapter_dir(finetuned):
        return load_model(resolve_model(finetuned), device=str(base.device))
    try:
        from peft import PeftModel
    except ImportError:
        raise MissingDependencyError(
            "peft", extra="train", why="loading a LoRA/PEFT adapter as --finetuned"
        ) from None
    import copy

    try:
        wrapped = PeftModel.from_pretrained(copy.deepcopy(base.model), finetuned)
    except (OSError, ValueError, RuntimeError) as error:
        raise ModelError(
            f"--finetuned {finetuned}: could not apply the adapter to {base.spec.name} ({error}).",
            fix="pass the --base model the adapter was trained on.",
        ) from None
    return LoadedModel(
        spec=base.spec,
        identity=f"{base.identity}+adapter:{Path(finetuned).resolve().name}",
        model=cast(Any, wrapped).eval(),  # a PeftModel stands in for the PreTrainedModel
        tokenizer=base.tokenizer,
    )
