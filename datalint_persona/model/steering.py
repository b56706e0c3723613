"""Steering: h_l <- h_l + alpha * v_l while the model runs, undone in ``finally``.

``layer`` follows the layer convention of :mod:`datalint_persona.model.capture`: steering layer l changes
``hidden_states[l]`` (the output of block l-1; for l = 0 the embeddings), so layers 0..L-1 can be
steered, and captures at layer l see the steered stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from datalint_persona.errors import ModelError
from datalint_persona.model.capture import decoder_blocks

if TYPE_CHECKING:
    import torch
    from torch import nn

Positions = Literal["all", "prompt", "response"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The transformers model inside a PEFT wrapper (LoRA layers stay injected), else the model."""
    get_base_model = getattr(model, "get_base_model", None)
    return get_base_model() if callable(get_base_model) else model  # type: ignore[no-any-return]


@contextmanager
def residual_edit(
    model: nn.Module, layer: int, edit: Callable[[torch.Tensor, nn.Module], torch.Tensor | None]
) -> Iterator[None]:
    """Replace ``hidden_states[layer]`` by ``edit(hidden, hooked_module)`` on every forward pass.

    ``edit`` returns None to leave a pass unchanged. Layer 0 (the embeddings) is edited by a
    pre-hook on block 0, layer l >= 1 by a forward hook on block l - 1, so
    ``output_hidden_states[l + 1]`` and every capture at layer l see the edit. The hook is removed
    on exit, also when the body raises. PEFT-wrapped models are unwrapped first.
    """
    blocks = decoder_blocks(unwrap_model(model))
    if not 0 <= layer < len(blocks):
        raise ModelError(
            f"Can't steer layer {layer}: steerable layers are 0..{len(blocks) - 1}.",
            fix="pick a layer below the number of blocks (the last layer is after the final norm).",
        )

    def pre_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # Layer 0: the embeddings, i.e. the input of block 0.
        edited = edit(args[0] if args else kwargs["hidden_states"], module)
        if edited is None:
            return None
        return ((edited, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": edited})

    def output_hook(module: nn.Module, _args: Any, output: Any) -> Any:
        # Layer l >= 1: the output of block l - 1.
        hidden = output[0] if isinstance(output, tuple) else output
        edited = edit(hidden, module)
        if edited is None:
            return None
        return (edited, *output[1:]) if isinstance(output, tuple) else edited

    if layer == 0:
        handle = blocks[0].register_forward_pre_hook(pre_hook, with_kwargs=True)
    else:
        handle = blocks[layer - 1].register_forward_hook(output_hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def steering(
    model: nn.Module, layer: int, vector: torch.Tensor, alpha: float, *, positions: Positions = "all"
) -> Iterator[None]:
    """Add ``alpha * vector`` to ``hidden_states[layer]`` on every forward pass inside the block.

    ``positions``: "all" steers every token; with a KV cache, "prompt" steers only the prefill pass
    (more than one new position) and "response" only the one-token decoding passes, i.e. the
    generated tokens. The hook is removed on exit, also when the body raises.

    >>> # with steering(model, 16, v, 2.0): model.generate(...)
    """

    def shift(hidden: torch.Tensor, _module: nn.Module) -> torch.Tensor | None:
        new_positions = hidden.shape[1]
        if (positions == "prompt" and new_positions == 1) or (positions == "response" and new_positions > 1):
            return None
        return hidden + alpha * vector.to(device=hidden.device, dtype=hidden.dtype)

    with residual_edit(model, layer, shift):
        yield
