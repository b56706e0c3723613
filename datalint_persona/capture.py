"""Capture residual-stream activations with forward hooks, stopping after the deepest needed layer.

Layer convention (the same everywhere in persona-lint, and recorded in every vector sidecar):
layer ``l`` is ``output_hidden_states[l]`` of a transformers model. ``0`` is the embedding output,
``1 <= l < L`` is the residual stream after block ``l-1``, and ``L`` (the number of blocks) is the
output of the final norm, as transformers reports it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from datalint_persona.errors import ModelError

if TYPE_CHECKING:
    import torch
    from torch import nn

LAYER_CONVENTION = (
    "hidden_states: layer l is output_hidden_states[l]; 0 = embeddings, "
    "1..L-1 = residual stream after block l-1, L = after the final norm"
)
_BLOCK_TEMPLATES = (
    "model.layers",
    "model.language_model.layers",
    "language_model.model.layers",
    "transformer.h",
    "gpt_neox.layers",
    "model.decoder.layers",
)
_NORM_TEMPLATES = (
    "model.norm",
    "model.language_model.norm",
    "language_model.model.norm",
    "transformer.ln_f",
    "gpt_neox.final_layer_norm",
    "model.decoder.final_layer_norm",
)


class _StopForward(Exception):
    """Raised inside a hook once the deepest needed layer is captured."""


def _lookup(model: nn.Module, dotted: str) -> Any:
    current: Any = model
    for part in dotted.split("."):
        current = getattr(current, part, None)
        if current is None:
            return None
    return current


def decoder_blocks(model: nn.Module) -> Sequence[nn.Module]:
    """The model's list of transformer blocks, found by trying known attribute paths."""
    for template in _BLOCK_TEMPLATES:
        blocks = _lookup(model, template)
        if blocks is not None and hasattr(blocks, "__len__"):
            return blocks  # type: ignore[no-any-return]
    raise ModelError(
        f"Can't find the transformer blocks of {type(model).__name__} (tried {', '.join(_BLOCK_TEMPLATES)}).",
        fix="open an issue naming the architecture.",
    )


def final_norm(model: nn.Module) -> nn.Module:
    for template in _NORM_TEMPLATES:
        norm = _lookup(model, template)
        if norm is not None:
            return norm  # type: ignore[no-any-return]
    raise ModelError(
        f"Can't find the final norm of {type(model).__name__}.",
        fix="use layers below the last one, or open an issue naming the architecture.",
    )


def _first_tensor(value: Any) -> torch.Tensor:
    tensor: torch.Tensor = value[0] if isinstance(value, tuple) else value
    return tensor


@contextmanager
def residual_hooks(
    model: nn.Module, layers: Sequence[int], *, stop_after_deepest: bool = True
) -> Iterator[dict[int, torch.Tensor]]:
    """Register hooks that store ``hidden_states[l]`` for each requested layer into the yielded dict.

    The hooks are removed in ``finally``, so a crash never leaves the model altered. With
    ``stop_after_deepest`` the forward pass is aborted right after the deepest layer is stored;
    use :func:`forward_to_layers`, which swallows that signal.

    >>> # with residual_hooks(model, [4, 8]) as store: forward_to_layers(...)  # store[4].shape == (b, s, d)
    """
    blocks = decoder_blocks(model)
    n_blocks = len(blocks)
    wanted = sorted(set(layers))
    if not wanted or wanted[0] < 0 or wanted[-1] > n_blocks:
        raise ModelError(
            f"Layer(s) {wanted} out of range: this model has layers 0..{n_blocks}.",
            fix="pick layers within that range (see the layer convention in the docs).",
        )
    deepest = wanted[-1]
    store: dict[int, torch.Tensor] = {}
    handles = []

    def make_pre_hook(layer: int) -> Any:
        def hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            store[layer] = args[0] if args else kwargs["hidden_states"]
            if stop_after_deepest and layer == deepest:
                raise _StopForward

        return hook

    def norm_hook(_module: nn.Module, _args: Any, output: Any) -> None:
        store[n_blocks] = _first_tensor(output)
        if stop_after_deepest:
            raise _StopForward

    try:
        for layer in wanted:
            if layer < n_blocks:
                # The input of block l is hidden_states[l].
                handles.append(
                    blocks[layer].register_forward_pre_hook(make_pre_hook(layer), with_kwargs=True)
                )
            else:
                handles.append(final_norm(model).register_forward_hook(norm_hook))
        yield store
    finally:
        for handle in handles:
            handle.remove()


def forward_to_layers(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    layers: Sequence[int],
) -> dict[int, torch.Tensor]:
    """Run the model's trunk (no LM head) up to the deepest layer; return ``{layer: (b, s, d)}``."""
    import torch

    trunk = getattr(model, "base_model", model)
    with torch.inference_mode(), residual_hooks(model, layers) as store:
        with suppress(_StopForward):
            trunk(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return dict(store)
