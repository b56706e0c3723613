"""Capture residual-stream activations with forward hooks, stopping after the deepest needed layer.

Layer convention (the same everywhere in persona-lint, and recorded in every vector sidecar):
layer ``l`` is ``output_hidden_states[l]`` of a transformers model. ``0`` is the embedding output,
``1 <= l < L`` is the residual stream after block ``l-1``, and ``L`` (the number of blocks) is the
output of the final norm, as transformers reports it.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator, Sequence
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
# Where the transformer blocks live, as attribute paths with ``{num}`` for the block's index (as
# steering-vectors writes them); tried in order, after the one set in LAYER_TEMPLATE_VARIABLE.
LAYER_TEMPLATES = (
    "model.layers.{num}",  # Llama, Mistral, Qwen, Gemma, SmolLM, Phi-3, ...
    "model.language_model.layers.{num}",  # multimodal wrappers (transformers 4.5x and later)
    "language_model.model.layers.{num}",  # multimodal wrappers (earlier transformers)
    "transformer.h.{num}",  # GPT-2, GPT-J, Falcon, Bloom
    "gpt_neox.layers.{num}",  # GPT-NeoX, Pythia
    "model.decoder.layers.{num}",  # OPT
)
# Set to the template of an architecture LAYER_TEMPLATES does not know, e.g. "backbone.blocks.{num}".
LAYER_TEMPLATE_VARIABLE = "PERSONA_LINT_LAYER_TEMPLATE"
# Where the final norm lives (layer L is its output), tried in order after NORM_PATH_VARIABLE.
NORM_PATHS = (
    "model.norm",
    "model.language_model.norm",
    "language_model.model.norm",
    "transformer.ln_f",
    "gpt_neox.final_layer_norm",
    "model.decoder.final_layer_norm",
)
# Set to the attribute path of the final norm of an architecture NORM_PATHS does not know.
NORM_PATH_VARIABLE = "PERSONA_LINT_FINAL_NORM"


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
    """The model's transformer blocks, in order, found through the first layer template that fits.

    The template in the environment variable ``PERSONA_LINT_LAYER_TEMPLATE`` is tried first, then
    :data:`LAYER_TEMPLATES`. A template fits when its block 0 exists.

    >>> import torch
    >>> class Toy(torch.nn.Module):
    ...     def __init__(self) -> None:
    ...         super().__init__()
    ...         self.transformer = torch.nn.Module()
    ...         self.transformer.h = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Identity()])
    >>> len(decoder_blocks(Toy()))
    2
    """
    templates = layer_templates()
    for template in templates:
        blocks = _blocks_at(model, template)
        if blocks:
            return blocks
    raise ModelError(
        f"Can't find the transformer blocks of {type(model).__name__} (tried {', '.join(templates)}).",
        fix=f"set {LAYER_TEMPLATE_VARIABLE} to the attribute path of its blocks with {{num}} for the "
        f"block's index, e.g. {LAYER_TEMPLATE_VARIABLE}=transformer.h.{{num}} "
        "(print(model) shows the path).",
    )


def layer_templates() -> tuple[str, ...]:
    """The layer templates to try: the one set in ``PERSONA_LINT_LAYER_TEMPLATE``, then the known ones.

    >>> layer_templates()[-1]
    'model.decoder.layers.{num}'
    """
    chosen = os.environ.get(LAYER_TEMPLATE_VARIABLE, "").strip()
    if not chosen:
        return LAYER_TEMPLATES
    try:
        well_formed = "{num}" in chosen and bool(chosen.format(num=0))
    except (KeyError, IndexError, ValueError):
        well_formed = False
    if not well_formed:
        raise ModelError(
            f"{LAYER_TEMPLATE_VARIABLE} is {chosen!r}, not an attribute path with {{num}} for the block's index.",
            fix=f"write it as, e.g., {LAYER_TEMPLATE_VARIABLE}=transformer.h.{{num}} (print(model) shows the path).",
        )
    return (chosen, *(template for template in LAYER_TEMPLATES if template != chosen))


def _blocks_at(model: nn.Module, template: str) -> tuple[nn.Module, ...]:
    """Blocks 0, 1, ... at ``template`` until one is missing (empty when block 0 is)."""
    from torch import nn

    blocks: list[nn.Module] = []
    while isinstance(block := _lookup(model, template.format(num=len(blocks))), nn.Module):
        blocks.append(block)
    return tuple(blocks)


def final_norm(model: nn.Module) -> nn.Module:
    """The module whose output is layer L: the path in ``PERSONA_LINT_FINAL_NORM``, else the first
    of :data:`NORM_PATHS` that exists."""
    from torch import nn

    chosen = os.environ.get(NORM_PATH_VARIABLE, "").strip()
    paths = (chosen, *NORM_PATHS) if chosen else NORM_PATHS
    for path in paths:
        norm = _lookup(model, path)
        if isinstance(norm, nn.Module):
            return norm
    raise ModelError(
        f"Can't find the final norm of {type(model).__name__} (tried {', '.join(paths)}).",
        fix=f"set {NORM_PATH_VARIABLE} to its attribute path, e.g. {NORM_PATH_VARIABLE}=transformer.ln_f "
        "(print(model) shows it), or use layers below the last one.",
    )


def _first_tensor(value: Any) -> torch.Tensor:
    tensor: torch.Tensor = value[0] if isinstance(value, tuple) else value
    return tensor


def _blocks_and_layers(model: nn.Module, layers: Sequence[int]) -> tuple[Sequence[nn.Module], list[int]]:
    """The model's blocks and the requested layers, sorted and checked against 0..L."""
    blocks = decoder_blocks(model)
    wanted = sorted(set(layers))
    if not wanted or wanted[0] < 0 or wanted[-1] > len(blocks):
        raise ModelError(
            f"Layer(s) {wanted} out of range: this model has layers 0..{len(blocks)}.",
            fix="pick layers within that range (see the layer convention in the docs).",
        )
    return blocks, wanted


@contextmanager
def _layer_hooks(
    model: nn.Module, layers: Sequence[int], on_layer: Callable[[int, torch.Tensor], None]
) -> Iterator[list[int]]:
    """Call ``on_layer(l, hidden_states[l])`` for each requested layer in every forward pass.

    Layer ``l < L`` is the input of block ``l`` (a pre-hook), ``L`` the final norm's output. The
    hooks are removed in ``finally``, so a crash never leaves the model altered. Yields the
    sorted layers.
    """
    blocks, wanted = _blocks_and_layers(model, layers)
    n_blocks = len(blocks)

    def make_pre_hook(layer: int) -> Any:
        def hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            on_layer(layer, args[0] if args else kwargs["hidden_states"])

        return hook

    def norm_hook(_module: nn.Module, _args: Any, output: Any) -> None:
        on_layer(n_blocks, _first_tensor(output))

    handles = []
    try:
        for layer in wanted:
            if layer < n_blocks:
                handles.append(
                    blocks[layer].register_forward_pre_hook(make_pre_hook(layer), with_kwargs=True)
                )
            else:
                handles.append(final_norm(model).register_forward_hook(norm_hook))
        yield wanted
    finally:
        for handle in handles:
            handle.remove()


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
    store: dict[int, torch.Tensor] = {}
    deepest = max(layers, default=-1)

    def keep(layer: int, hidden: torch.Tensor) -> None:
        store[layer] = hidden
        if stop_after_deepest and layer == deepest:
            raise _StopForward

    with _layer_hooks(model, layers, keep):
        yield store


@contextmanager
def record_last_positions(model: nn.Module, layers: Sequence[int]) -> Iterator[dict[int, list[torch.Tensor]]]:
    """While generating: after each forward call, append ``hidden_states[l][:, -1]`` ((b, d)) per layer.

    Call 0 is the prompt's (prefill); call k feeds the k-th generated token (0-based: token k-1),
    so the list for a layer holds one activation per fed token, in order. The hooks are removed in
    ``finally`` and never stop the forward pass.
    """
    recorded: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}

    def append(layer: int, hidden: torch.Tensor) -> None:
        recorded[layer].append(hidden[:, -1].detach().clone())

    with _layer_hooks(model, layers, append):
        yield recorded


MIN_SHARED_PREFIX = 4  # tokens; below this, a separate prefix pass costs more than it saves


def shared_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """Tokens at the start that every row of a right-padded batch shares, leaving each row one of its own.

    Below ``MIN_SHARED_PREFIX`` tokens (or for one row) it is 0: a separate pass would cost more than it saves.

    >>> import torch
    >>> ids = torch.tensor([[5, 6, 7, 8, 9, 4], [5, 6, 7, 8, 1, 0]])
    >>> shared_prefix_length(ids, torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]]))
    4
    """
    if input_ids.shape[0] < 2:
        return 0
    # (batch, seq) -> (seq,): True where every row has row 0's token
    same = (input_ids == input_ids[:1]).all(dim=0)
    common = int(same.long().cumprod(dim=0).sum())
    shortest = int(attention_mask.sum(dim=1).min())
    shared = min(common, shortest - 1)
    return shared if shared >= MIN_SHARED_PREFIX else 0


def forward_to_layers(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    layers: Sequence[int],
    *,
    prefix: int = 0,
) -> dict[int, torch.Tensor]:
    """Run the model's trunk (no LM head) up to the deepest layer; return ``{layer: (b, s, d)}``.

    ``input_ids`` must be right-padded. With ``prefix`` > 0, the first ``prefix`` tokens, which
    every row must share (see :func:`shared_prefix_length`: the chat template's system prompt, or
    one prompt under y and y'), run once, and the rows continue from their key/value cache: the
    same positions, tokens and masks, so the same activations up to float rounding, for fewer FLOPs.
    """
    import torch

    trunk = getattr(model, "base_model", model)
    with torch.inference_mode(), residual_hooks(model, layers) as store:
        if prefix <= 0:
            with suppress(_StopForward):
                trunk(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
            return dict(store)
        from transformers import DynamicCache

        cache = DynamicCache(config=getattr(model, "config", None))
        # transformers 5 names the argument ``cache``; earlier versions ``past_key_values``.
        cache_argument = (
            "cache" if "cache" in inspect.signature(trunk.forward).parameters else "past_key_values"
        )
        with suppress(_StopForward):
            trunk(
                input_ids=input_ids[:1, :prefix],
                attention_mask=attention_mask[:1, :prefix],
                use_cache=True,
                **{cache_argument: cache},
            )
        head = dict(store)  # {layer: (1, prefix, d)}
        cache.batch_repeat_interleave(input_ids.shape[0])
        with suppress(_StopForward):
            trunk(
                input_ids=input_ids[:, prefix:],
                attention_mask=attention_mask,  # (b, prefix + rest): the cache's positions included
                use_cache=True,
                **{cache_argument: cache},
            )
        rows = input_ids.shape[0]
        # (1, prefix, d) + (b, rest, d) -> (b, seq, d)
        return {layer: torch.cat([head[layer].expand(rows, -1, -1), store[layer]], dim=1) for layer in head}
