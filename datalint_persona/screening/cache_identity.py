"""What a cached y' or projection depends on beyond the model's identity.

The identity in reports and vector sidecars fingerprints the weights only (the sha256 of a local
model's weight files, or ``hf:<id>@<commit>``). The caches also need what else changes y' or the
activations: the device and the dtype the model runs in, the tokenizer (its vocabulary, special
tokens and chat template), the generation config (end-of-sequence ids, repetition penalty, ...) and
the model config. These are hashed as loaded, so a tokenizer or generation-config file changed
next to unchanged weights gives new keys. A hub model whose commit is unknown (``@unknown``) is
fingerprinted by its loaded weights instead, since its name says nothing about which weights they are.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel

_UNKNOWN_REVISION = "@unknown"
# Config entries that name where or with what the file was saved, not what the model computes.
# ``architectures`` names the class to build (always a causal LM here); a GGUF file has none,
# while its dequantized copy (model/dequantized.py) records it.
_NOT_BEHAVIOUR = (
    "_name_or_path",
    "_commit_hash",
    "transformers_version",
    "_from_model_config",
    "architectures",
)


def cache_identity(loaded: LoadedModel) -> str:
    """A string that differs whenever the model's y' or activations may differ.

    >>> # cache_identity(loaded) -> 'sha256:…|cpu|torch.float32|tokenizer:…|generation:…|config:…'
    """
    model: Any = loaded.model
    weights = loaded.identity
    if weights.endswith(_UNKNOWN_REVISION):
        weights += f"+weights:{weights_fingerprint(loaded)}"
    parts = [
        weights,
        loaded.device.type,
        str(model.dtype),
        "tokenizer:" + tokenizer_fingerprint(loaded.tokenizer),
        "generation:" + _config_fingerprint(getattr(model, "generation_config", None)),
        "config:" + _config_fingerprint(model.config),
    ]
    return "|".join(parts)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of the tokenizer as loaded: its full serialization where it has one (fast
    tokenizers), else its vocabulary, plus special tokens and chat template."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    core = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    extra = json.dumps(
        [
            str(getattr(tokenizer, "chat_template", None)),
            [str(token) for token in tokenizer.all_special_tokens],
            tokenizer.padding_side,
            getattr(tokenizer, "add_bos_token", None),
            getattr(tokenizer, "add_eos_token", None),
        ]
    )
    return hashlib.sha256(f"{core}\0{extra}".encode()).hexdigest()


def _config_fingerprint(config: Any) -> str:
    if config is None:
        return "none"
    values = {k: v for k, v in config.to_dict().items() if k not in _NOT_BEHAVIOUR}
    quantization = values.get("quantization_config")
    if isinstance(quantization, dict) and str(quantization.get("quant_method")).lower().endswith("gguf"):
        # How a GGUF file was read (it is always dequantized; the identity is the file's sha256).
        del values["quantization_config"]
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def weights_fingerprint(loaded: LoadedModel) -> str:
    """sha256 of every tensor of the loaded model (name, dtype, shape and bytes), computed once
    per loaded model: it reads all the weights."""
    import torch

    cached = _WEIGHTS.get(loaded.model)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    for name, tensor in loaded.model.state_dict().items():
        flat = tensor.detach().reshape(-1).contiguous().cpu()
        digest.update(f"{name}\0{flat.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    _WEIGHTS[loaded.model] = digest.hexdigest()
    return digest.hexdigest()


# Each loaded model's weight fingerprint, forgotten with the model.
_WEIGHTS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
