"""Preventative steering during finetuning (Chen et al. 2025, section 5.2).

While a model trains on data that would push it toward a trait, adding ``alpha * v`` at layer l in
every *training* forward pass supplies that push from outside, so the weights need not learn it: the
finetuning shift along v shrinks. The ablation variant instead projects v out of the residual stream
(``h <- h - (h . v_hat) v_hat``), so nothing the weights learn can show along v at that layer.

Both only act while the hooked block is in training mode (``module.training``): ``model.eval()``
switches them off for evaluation and generation inside the same block, and leaving the block removes
the hook, also on error. Works with any training loop, and with a transformers ``Trainer`` through
:class:`PreventativeSteeringCallback`.

>>> # with preventative_steering(model, 15, vector.vectors[15], 1.0):
>>> #     for batch in loader: model(**batch).loss.backward(); optimizer.step()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, Literal

from transformers import TrainerCallback

from datalint_persona.errors import ModelError
from datalint_persona.model.steering import residual_edit

if TYPE_CHECKING:
    import torch
    from torch import nn

Mode = Literal["add", "ablate"]


@contextmanager
def preventative_steering(
    model: nn.Module, layer: int, vector: torch.Tensor, alpha: float = 1.0, *, mode: Mode = "add"
) -> Iterator[None]:
    """During train-mode forward passes: ``h_l += alpha * vector`` ("add"), or remove the
    component of ``h_l`` along ``vector`` ("ablate"; ``alpha`` is ignored). Eval mode is untouched.

    ``vector`` is used as given for "add" (pass a unit vector to add exactly ``alpha`` along it, or
    the raw persona vector for the paper's scale) and normalized for "ablate". ``layer`` follows
    the layer convention of :mod:`datalint_persona.model.capture` (``output_hidden_states[layer]``).
    """
    import torch

    if mode not in ("add", "ablate"):
        raise ModelError(f"Unknown preventative steering mode '{mode}'.", fix="use 'add' or 'ablate'.")
    direction = vector.detach().flatten().float()
    norm = float(torch.linalg.vector_norm(direction))
    if norm == 0.0:
        raise ModelError("The steering vector is zero.", fix="pass a non-zero persona vector.")
    unit = direction / norm

    def edit(hidden: torch.Tensor, module: nn.Module) -> torch.Tensor | None:
        if not module.training:
            return None
        if mode == "add":
            return hidden + alpha * direction.to(device=hidden.device, dtype=hidden.dtype)
        along = unit.to(device=hidden.device, dtype=hidden.dtype)
        # (batch, seq, d) . (d,) -> (batch, seq, 1): each position's component along v_hat.
        return hidden - (hidden @ along).unsqueeze(-1) * along

    with residual_edit(model, layer, edit):
        yield


class PreventativeSteeringCallback(TrainerCallback):  # type: ignore[misc]
    """A transformers ``TrainerCallback`` that holds :func:`preventative_steering` from
    ``on_train_begin`` to ``on_train_end`` on the model the Trainer trains.

    Evaluation inside ``Trainer.train`` runs in eval mode, so it is not steered.

    >>> # Trainer(model, args, train_dataset=ds, callbacks=[PreventativeSteeringCallback(15, v, 1.0)])
    """

    def __init__(self, layer: int, vector: torch.Tensor, alpha: float = 1.0, *, mode: Mode = "add") -> None:
        self.layer, self.vector, self.alpha, self.mode = layer, vector, alpha, mode
        self._stack: ExitStack | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is None:
            raise ModelError(
                "The Trainer passed no model to the callback.", fix="pass model= to the Trainer."
            )
        self.close()
        stack = ExitStack()
        stack.enter_context(preventative_steering(model, self.layer, self.vector, self.alpha, mode=self.mode))
        self._stack = stack

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.close()

    def close(self) -> None:
        """Remove the hook (also safe to call when training crashed before ``on_train_end``)."""
        if self._stack is not None:
            stack, self._stack = self._stack, None
            stack.close()
