"""A GGUF model's dequantized weights, kept in the user cache as safetensors, so that only the
first load of a GGUF file pays for the dequantization.

transformers reads a GGUF file by dequantizing every tensor and converting its tokenizer: about
20 s for the embedded model on 2 cores, on every run. After such a load, :func:`save_dequantized`
writes what it produced (the fp32 weights as ``model.safetensors``, the config, the generation
config and the tokenizer) to ``<user cache>/dequantized/<key>/``; the next load of that file
reads the folder instead (memory-mapped, well under a second). The key is the GGUF file's sha256
with the versions of the libraries that convert it (:func:`dequantized_key`), so a changed file or
an upgraded converter is dequantized again.

The model read back is the one the GGUF load gives, weight for weight: the same tensors, logits
and tokenizer. The config differs only in what says how it was read (a GGUF
``quantization_config``; ``architectures``, which a GGUF file does not record), which
:func:`~datalint_persona.screening.cache_identity.cache_identity` leaves out, so both loads share
their y' and projection caches.

The folder appears whole or not at all (written beside it, then renamed into place). One that
cannot be read is removed and the GGUF is loaded again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datalint_persona.user_cache import user_cache_dir

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Bumped when what the folder holds, or how it is read, changes.
FORMAT = 1
WEIGHTS_NAME = "model.safetensors"
# Libraries whose version may change what a GGUF load yields (the dequantization, the tokenizer).
_CONVERTERS = ("transformers", "gguf", "tokenizers", "safetensors")
# Written last: a folder without it is not complete (a folder left by a crash mid-rename).
_DONE = "persona-lint-dequantized.json"

__all__ = ["FORMAT", "dequantized_folder", "dequantized_key", "load_dequantized", "save_dequantized"]


def dequantized_key(gguf_sha256: str) -> str:
    """The cache key of a GGUF file with this sha256 under the installed converters.

    >>> len(dequantized_key("0" * 64))
    64
    """
    payload = [FORMAT, gguf_sha256, [[name, _version(name)] for name in _CONVERTERS]]
    return hashlib.sha256(json.dumps(payload).encode("utf-8")).hexdigest()


def dequantized_folder(gguf_sha256: str, base: Path | None = None) -> Path:
    """Where the dequantized copy of that GGUF file lives (it may not exist).

    >>> dequantized_folder("0" * 64, Path("/c")).parent.as_posix()
    '/c/dequantized'
    """
    return (user_cache_dir() if base is None else base) / "dequantized" / dequantized_key(gguf_sha256)


def save_dequantized(folder: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> bool:
    """Write ``model`` (as loaded from a GGUF file) and ``tokenizer`` to ``folder``, atomically;
    False, leaving nothing behind, when the cache cannot be written (a full disk, a read-only home).

    The weights are written in float32 whatever the model's dtype, so one copy serves every
    ``--dtype``; tied weights (the LM head of SmolLM2) are written once.
    """
    import torch
    from safetensors.torch import save_file

    if (folder / _DONE).is_file():
        return True
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incomplete-", dir=folder.parent))
    except OSError:
        return False
    try:
        state = model.state_dict()
        # A tied LM head is left out and tied again on load (the config says so); anything else
        # that shares storage is written as a copy of its own.
        tied = _tied_names(state) if getattr(model.config, "tie_word_embeddings", False) else set()
        tensors = {
            name: tensor.detach().to(device="cpu", dtype=torch.float32).clone()
            for name, tensor in state.items()
            if name not in tied
        }
        save_file(tensors, str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
        config = model.config.to_dict()
        config.pop("quantization_config", None)  # the weights are plain float32 now
        config["architectures"] = [type(model).__name__]
        config["dtype"] = "float32"
        (staging / "config.json").write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
        model.generation_config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / _DONE).write_text(json.dumps({"format": FORMAT, "tied": sorted(tied)}), encoding="utf-8")
        _fsync_folder(staging)
        try:
            os.replace(staging, folder)
        except OSError:  # another process put a complete copy there first
            shutil.rmtree(staging, ignore_errors=True)
            return (folder / _DONE).is_file()
        return True
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        return False


def load_dequantized(
    folder: Path, *, dtype: str, device: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase] | None:
    """The model and tokenizer :func:`save_dequantized` wrote to ``folder``, in ``dtype`` on
    ``device``; None when there is no complete copy. A copy that fails to load is removed."""
    if not (folder / _DONE).is_file():
        return None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model: Any = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, dtype))
    except Exception:  # noqa: BLE001 - a damaged cache entry fails in many ways; the GGUF is the truth
        shutil.rmtree(folder, ignore_errors=True)  # the GGUF is loaded and written again
        return None
    return model.to(device).eval(), tokenizer


def _tied_names(state: dict[str, Any]) -> set[str]:
    """Names in ``state`` whose tensor shares its storage with an earlier name's (tied weights)."""
    seen: set[tuple[int, int]] = set()
    tied: set[str] = set()
    for name, tensor in state.items():
        where = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        if where in seen:
            tied.add(name)
        seen.add(where)
    return tied


def _fsync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
