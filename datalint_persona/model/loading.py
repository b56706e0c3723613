"""Find a model, fingerprint it, and load it with its tokenizer.

``--model`` takes a hub id, a local directory, a ``.gguf`` file, or the alias of the embedded default
(``smollm2-135m-instruct``). The identity recorded in reports and vector sidecars is the sha256 of the
weight files for local models, and ``hf:<id>@<commit>`` for hub models.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from datalint_persona.errors import MissingDependencyError, ModelError
from datalint_persona.model.dtypes import resolve_dtype
from datalint_persona.model.embedded import (
    EMBEDDED_DISTRIBUTION,
    EMBEDDED_GGUF_NAME,
    embedded_gguf_path,
)
from datalint_persona.settings import DEFAULT_MODEL

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

ALIASES = {DEFAULT_MODEL: EMBEDDED_DISTRIBUTION, "default": EMBEDDED_DISTRIBUTION}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelSpec:
    """Where a model lives and what it is, before it is loaded.

    ``directory``/``gguf_file`` are what ``from_pretrained`` takes; ``identity`` is computed lazily by
    :func:`model_identity` because hashing weights costs I/O.
    """

    name: str
    kind: Literal["gguf", "local", "hub"]
    directory: str
    gguf_file: str | None = None


@dataclass
class LoadedModel:
    spec: ModelSpec
    identity: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context_length(self) -> int:
        config = self.model.config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048


def resolve_model(name: str) -> ModelSpec:
    """Turn a ``--model`` value into a :class:`ModelSpec`.

    >>> resolve_model("org/some-model").kind
    'hub'
    """
    if name in ALIASES:
        path = embedded_gguf_path()
        return ModelSpec(DEFAULT_MODEL, "gguf", str(path.parent), path.name)
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelError(
                f"--model {name}: a model file must be a .gguf file.",
                fix="pass a .gguf file, a model directory, a hub id, or 'smollm2-135m-instruct'.",
            )
        # A copy of the embedded model's file (e.g. in a pre-commit hook's own environment) keeps the
        # embedded name, so the bundled vectors apply; they still check the file's identity.
        shown = DEFAULT_MODEL if path.name == EMBEDDED_GGUF_NAME else path.name
        return ModelSpec(shown, "gguf", str(path.resolve().parent), path.name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"--model {name}: the directory has no config.json.",
                fix="point --model at a folder written by save_pretrained, or at a .gguf file.",
            )
        return ModelSpec(path.name, "local", str(path.resolve()))
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return ModelSpec(name, "hub", name)
    raise ModelError(
        f"--model {name}: no such file or directory, and not a hub id (owner/name).",
        fix="pass a .gguf file, a model directory, a hub id, or 'smollm2-135m-instruct'.",
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_identity(spec: ModelSpec, *, commit_hash: str | None = None) -> str:
    """A fingerprint of the weights: ``sha256:<hex>`` for files on disk, ``hf:<id>@<commit>`` for hub ids."""
    if spec.kind == "gguf":
        return "sha256:" + sha256_file(Path(spec.directory) / str(spec.gguf_file))
    if spec.kind == "local":
        digest = hashlib.sha256()
        directory = Path(spec.directory)
        files = sorted(p for p in directory.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        if not files:
            raise ModelError(
                f"--model {spec.directory}: the directory holds no weight files "
                f"({', '.join(WEIGHT_SUFFIXES)}).",
                fix="save the model with save_pretrained into that folder.",
            )
        for file in files:
            digest.update(file.name.encode() + b"\0" + sha256_file(file).encode())
        return "sha256:" + digest.hexdigest()
    return f"hf:{spec.name}@{commit_hash or 'unknown'}"


def resolve_device(choice: str) -> str:
    """``--device``: ``auto`` is the GPU when torch sees one, else the CPU; any other value as given.

    >>> resolve_device("cpu")
    'cpu'
    """
    if choice != "auto":
        return choice
    if not _gpu_may_be_present():
        return "cpu"  # without a GPU driver's device files, torch sees no GPU: no need to import it
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# The device files a CUDA (NVIDIA), ROCm (AMD) or WSL GPU driver provides on Linux.
_GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def _gpu_may_be_present() -> bool:
    """False only where torch certainly sees no GPU: macOS (no CUDA there), and Linux without any
    GPU driver's device file. Elsewhere torch is asked."""
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return any(os.path.exists(path) for path in _GPU_DEVICE_FILES)
    return True


def load_model(
    spec: ModelSpec, *, device: str = "cpu", dtype: str = "float32", quiet: bool = True
) -> LoadedModel:
    """Load model and tokenizer in eval mode, on ``device`` (``auto``: see :func:`resolve_device`),
    in ``dtype`` (``auto``: see :func:`~datalint_persona.model.dtypes.resolve_dtype`).

    transformers' own progress bars are hidden when quiet.
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:  # pragma: no cover - torch and transformers are core dependencies
        raise MissingDependencyError(error.name or "transformers") from error
    if spec.kind == "gguf":
        try:
            import gguf  # noqa: F401
        except ImportError:
            raise MissingDependencyError("gguf", why="loading .gguf models") from None
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    sink = io.StringIO()
    redirect = contextlib.redirect_stderr(sink) if quiet else contextlib.nullcontext()
    if spec.kind == "gguf":
        identity = model_identity(spec)
        with redirect:
            model, tokenizer = _load_gguf(spec, identity, dtype, device)
        return LoadedModel(spec=spec, identity=identity, model=model, tokenizer=tokenizer)
    try:
        with redirect:
            tokenizer = AutoTokenizer.from_pretrained(spec.directory)
            model = AutoModelForCausalLM.from_pretrained(spec.directory, dtype=getattr(torch, dtype))
    except OSError as error:
        raise _unloadable(spec, error) from error
    # transformers' stubs type .to() for dtype/device objects only; a device string is valid.
    model = cast(Any, model).to(device).eval()
    commit = getattr(model.config, "_commit_hash", None)
    identity = model_identity(spec, commit_hash=commit)
    return LoadedModel(spec=spec, identity=identity, model=model, tokenizer=tokenizer)


def _load_gguf(spec: ModelSpec, identity: str, dtype: str, device: str) -> tuple[Any, Any]:
    """A GGUF model from its dequantized copy in the user cache, or from the file itself, which
    then fills that copy (see :mod:`datalint_persona.model.dequantized`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datalint_persona.model.dequantized import dequantized_folder, load_dequantized, save_dequantized

    folder = dequantized_folder(identity.removeprefix("sha256:"))
    cached = load_dequantized(folder, dtype=dtype, device=device)
    if cached is not None:
        return cached
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.directory, gguf_file=spec.gguf_file)
        # float32, the exact dequantized values, which the copy keeps.
        model: Any = AutoModelForCausalLM.from_pretrained(
            spec.directory, dtype=torch.float32, gguf_file=spec.gguf_file
        )
        saved = save_dequantized(folder, model, tokenizer)  # best effort: else the next load is as slow
        if dtype == "float32":
            return model.to(device).eval(), tokenizer
        # Another dtype is read from the copy, as every later run reads it (a cast of the loaded
        # model would also cast buffers such as the rotary frequencies, which a load keeps in float32).
        cached = load_dequantized(folder, dtype=dtype, device=device) if saved else None
        if cached is not None:
            return cached
        model = AutoModelForCausalLM.from_pretrained(
            spec.directory, dtype=getattr(torch, dtype), gguf_file=spec.gguf_file
        )
    except OSError as error:
        raise _unloadable(spec, error) from error
    return model.to(device).eval(), tokenizer


def _unloadable(spec: ModelSpec, error: OSError) -> ModelError:
    return ModelError(
        f"--model {spec.name}: could not load the model ({error}).",
        fix="check the path or hub id; hub ids need network access or a filled HF cache.",
    )
