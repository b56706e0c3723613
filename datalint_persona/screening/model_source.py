"""A screening run's model, loaded only when the caches lack something.

The run plans with the model's facts (:mod:`.model_facts`), which the model cache holds when an
earlier load recorded them under the same files key; only then does a run skip the load. The model
itself loads on first use, and its facts are recorded for the next run. Should the facts found
in the cache differ from those of the model as loaded (they cannot, unless a file changed during
the run), the run starts again with the loaded model (:class:`StaleModelFacts`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from datalint_persona.screening.model_facts import ModelFacts, ModelFactsCache, facts_of, model_files_key

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel, ModelSpec

ProgressCallback = Callable[[str, int, int], None]

__all__ = ["ModelSource", "StaleModelFacts"]


class StaleModelFacts(Exception):  # noqa: N818 - a signal to start again, not an error
    """The cached facts did not match the model as loaded; ``loaded`` is that model."""

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__("the cached model facts did not match the loaded model")
        self.loaded = loaded


class ModelSource:
    """The model of one run: ``facts`` without a load where the model cache has them, ``loaded``
    (the model itself) on first use.

    A model passed in (``loaded``) is used as it is, and its facts are not recorded: how it was
    loaded is not known here.
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        device: str,
        dtype: str,
        cache_dir: str | None,
        progress: ProgressCallback | None = None,
        loaded: LoadedModel | None = None,
    ) -> None:
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self.cache_dir = cache_dir
        self.progress = progress
        self.warnings: list[str] = []
        self._loaded = loaded
        self._facts = facts_of(loaded) if loaded is not None else None
        self._files_key: str | None = None

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    @property
    def facts(self) -> ModelFacts:
        if self._facts is None:
            self._facts = self._remembered()
        if self._facts is None:
            self._facts = facts_of(self.loaded)
        return self._facts

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            files_key = self._key()  # of the files as they are before the load
            self._loaded = self._load()
            fresh = facts_of(self._loaded)
            if files_key is not None:
                self._with_cache(lambda cache: cache.put(files_key, fresh))
            if self._facts is not None and fresh != self._facts:
                raise StaleModelFacts(self._loaded)
            self._facts = fresh
        return self._loaded

    def _key(self) -> str | None:
        if self.cache_dir is None:
            return None
        if self._files_key is None:
            self._files_key = model_files_key(self.spec, device=self.device, dtype=self.dtype)
        return self._files_key

    def _remembered(self) -> ModelFacts | None:
        files_key = self._key()
        if files_key is None:
            return None
        return self._with_cache(lambda cache: cache.get(files_key))

    def _with_cache(self, work: Callable[[ModelFactsCache], ModelFacts | None]) -> ModelFacts | None:
        cache = ModelFactsCache(self.cache_dir)
        try:
            return work(cache)
        finally:
            cache.close()
            self.warnings += [w for w in cache.warnings if w not in self.warnings]

    def _load(self) -> LoadedModel:
        from datalint_persona.model.loading import load_model

        if self.progress:
            self.progress("load-model", 0, 1)
        loaded = load_model(self.spec, device=self.device, dtype=self.dtype)
        if self.progress:
            self.progress("load-model", 1, 1)
        return loaded
