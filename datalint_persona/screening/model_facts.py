"""What a screening run needs to know about its model, remembered so that a fully cached run never
loads it.

A run needs the model's identity, the scope of its cache keys
(:func:`~datalint_persona.screening.cache_identity.cache_identity`: device, dtype, tokenizer,
configs), its chat template's hash, and the shapes that reports and vectors check (layers, hidden
size, context). All of these come from loading the model, which dequantizes a GGUF file and takes
seconds. So each load records them in ``models.sqlite3`` in the cache folder, under a key that
needs no load: :func:`model_files_key`, the sha256 of the model's files (weights and everything
beside them), the device and dtype it is loaded with, and the versions of the libraries that load
it. A changed file, device, dtype or library is a new key, so the next run loads the model again
and records its facts anew. A hub model has no such key (its files are not known before the load),
so it is always loaded.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sqlite3
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datalint_persona import __version__
from datalint_persona.run_records import ModelInfo
from datalint_persona.screening.cache_file import CacheTable

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel, ModelSpec

DATABASE_NAME = "models.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    files_key TEXT PRIMARY KEY,
    facts TEXT NOT NULL,
    checksum TEXT NOT NULL
)
"""
# Bumped when ModelFacts or what it is derived from changes meaning.
_FORMAT = 1
# Libraries whose version may change what a load yields (the GGUF conversion, the tokenizer).
_LOADERS = ("torch", "transformers", "tokenizers", "gguf")
# Files beside the weights larger than this are fingerprinted by size and mtime, not hashed.
_HASH_LIMIT = 256 << 20

__all__ = ["ModelFacts", "ModelFactsCache", "chat_template_sha256", "facts_of", "model_files_key"]


@dataclass(frozen=True)
class ModelFacts:
    """What a run uses of its model beyond the forward passes, as a load found it."""

    identity: str  # the weights' fingerprint (:func:`~datalint_persona.model.loading.model_identity`)
    cache_scope: str  # what the cache keys hold beyond the weights (cache_identity)
    chat_template_sha256: str  # part of each projection's key (the template decides the tokens)
    architecture: str
    num_layers: int
    hidden_size: int
    context_length: int

    def describe(self, spec: ModelSpec) -> ModelInfo:
        """What reports record about the model (its name and kind as this run resolved them)."""
        return ModelInfo(
            name=spec.name,
            identity=self.identity,
            kind=spec.kind,
            architecture=self.architecture,
            num_layers=self.num_layers,
            hidden_size=self.hidden_size,
        )

    @classmethod
    def from_dict(cls, entry: Any) -> ModelFacts | None:
        """The facts of a stored entry, or None when it does not have exactly these fields and types."""
        if not isinstance(entry, dict) or set(entry) != {f.name for f in fields(cls)}:
            return None
        kinds = {f.name: int if f.type == "int" else str for f in fields(cls)}
        if not all(type(entry[name]) is kind for name, kind in kinds.items()):
            return None
        return cls(**entry)


def chat_template_sha256(tokenizer: Any) -> str:
    """sha256 of the tokenizer's chat template (of ``"None"`` when it has none)."""
    template = str(getattr(tokenizer, "chat_template", None))
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


def facts_of(loaded: LoadedModel) -> ModelFacts:
    """The facts of a loaded model.

    >>> # facts_of(loaded).num_layers == loaded.num_layers
    """
    from datalint_persona.screening.cache_identity import cache_identity

    return ModelFacts(
        identity=loaded.identity,
        cache_scope=cache_identity(loaded),
        chat_template_sha256=chat_template_sha256(loaded.tokenizer),
        architecture=type(loaded.model).__name__,
        num_layers=loaded.num_layers,
        hidden_size=loaded.hidden_size,
        context_length=loaded.context_length,
    )


def model_files_key(spec: ModelSpec, *, device: str, dtype: str) -> str | None:
    """A key that changes whenever loading ``spec`` on ``device`` in ``dtype`` may give another
    model, computed without loading it; None for a hub model.

    It hashes the weights (as :func:`~datalint_persona.model.loading.model_identity` does), every
    other file in the model's folder (config, tokenizer, generation config; a GGUF's folder too,
    since the tokenizer may read files beside it), the device as ``device`` resolves, the dtype,
    and the versions of persona-lint and of the libraries that load the model.

    >>> # model_files_key(resolve_model("model.gguf"), device="cpu", dtype="float32") -> 'e3b0…'
    """
    from datalint_persona.model.dtypes import resolve_dtype
    from datalint_persona.model.loading import WEIGHT_SUFFIXES, model_identity, resolve_device

    if spec.kind == "hub":
        return None
    folder = Path(spec.directory)
    beside = sorted(
        path for path in folder.iterdir() if path.is_file() and path.suffix not in WEIGHT_SUFFIXES
    )
    payload = [
        _FORMAT,
        __version__,
        spec.kind,
        model_identity(spec),
        [[path.name, _file_fingerprint(path)] for path in beside],
        resolve_device(device),
        resolve_dtype(dtype, resolve_device(device)),
        [[name, _version(name)] for name in _LOADERS],
    ]
    return hashlib.sha256(json.dumps(payload).encode("utf-8")).hexdigest()


def _file_fingerprint(path: Path) -> str:
    from datalint_persona.model.loading import sha256_file

    status = path.stat()
    if status.st_size > _HASH_LIMIT:
        return f"size:{status.st_size},mtime:{status.st_mtime_ns}"
    return sha256_file(path)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


class ModelFactsCache(CacheTable):
    """``get`` / ``put`` of :class:`ModelFacts` by :func:`model_files_key` in ``directory``;
    ``None`` disables it. An entry that fails its checksum or does not convert is dropped (the
    model is then loaded), with a warning; a damaged file is handled as the other caches do
    (:mod:`datalint_persona.screening.cache_file`)."""

    def __init__(self, directory: str | Path | None) -> None:
        super().__init__(
            directory,
            DATABASE_NAME,
            _SCHEMA,
            what="model cache",
            consequence="the model is loaded even when every result is cached",
        )

    def get(self, files_key: str) -> ModelFacts | None:
        if self._file is None:
            return None
        row = self._file.read(
            lambda connection: connection.execute(
                "SELECT facts, checksum FROM models WHERE files_key = ?", (files_key,)
            ).fetchone()
        )
        if row is None:
            return None
        facts = _parse(files_key, row)
        if facts is None:
            self._file.write(lambda c: c.execute("DELETE FROM models WHERE files_key = ?", (files_key,)))
            self._warnings.append("a cached model entry failed its checksum; the model was loaded.")
        return facts

    def put(self, files_key: str, facts: ModelFacts) -> None:
        if self._file is None:
            return
        text = json.dumps(asdict(facts), sort_keys=True)
        checksum = _checksum(files_key, text)
        self._file.write(
            lambda c: c.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?)", (files_key, text, checksum))
        )


def _checksum(files_key: str, text: str) -> str:
    return hashlib.sha256(f"{files_key}\0{text}".encode()).hexdigest()


def _parse(files_key: str, row: sqlite3.Row | tuple[Any, ...]) -> ModelFacts | None:
    text, checksum = row
    # SQLite keeps whatever type was written, so a damaged row may not even convert.
    if not isinstance(text, str) or checksum != _checksum(files_key, text):
        return None
    try:
        return ModelFacts.from_dict(json.loads(text))
    except json.JSONDecodeError:
        return None
