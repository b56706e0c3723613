"""What one screening run records beside its scores: the model, settings, vectors and inputs, and
the :class:`ScreenResult` that the reporters read.

Every record is a frozen dataclass; ``as_dict``/``from_dict`` are the JSON report's form of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from datalint_persona.types import (
    LEVEL_ORDER,
    DatasetSummary,
    Finding,
    InvalidRecord,
    RuleInfo,
    SampleScore,
)


@dataclass(frozen=True)
class ModelInfo:
    """The base model of a run, as reports record it (every value a string in the JSON report)."""

    name: str
    identity: str  # what caches and vectors are keyed by (a content hash)
    kind: str  # "gguf" | "local" | "hub"
    architecture: str
    num_layers: int
    hidden_size: int

    def as_dict(self) -> dict[str, str]:
        return {key: str(value) for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> ModelInfo:
        """Read back :meth:`as_dict` (the ``model`` of a JSON report)."""
        return cls(
            name=str(entry["name"]),
            identity=str(entry["identity"]),
            kind=str(entry["kind"]),
            architecture=str(entry["architecture"]),
            num_layers=int(entry["num_layers"]),
            hidden_size=int(entry["hidden_size"]),
        )


@dataclass(frozen=True)
class VectorInfo:
    """What a report records about one persona vector file."""

    trait: str
    file: str  # display path
    sha256: str  # of the tensor file
    model_identity: str
    method: str  # "contrastive" | "prompted" | ...


@dataclass(frozen=True)
class InputInfo:
    """One input as it was read: its display path and the sha256 of its bytes (None for a hub dataset)."""

    path: str
    sha256: str | None


@dataclass(frozen=True)
class ShardInfo:
    """Which shard of a ``--shard i/N`` run this is, and how many samples the whole run has."""

    index: int
    count: int
    total_samples: int


@dataclass(frozen=True)
class ChangeComparison:
    """A pull request's changed samples of one file against its unchanged ones, for one trait.

    The file's own style is the reference: flagged when a one-sided Welch t test shows that the
    changed samples' mean ΔP exceeds the unchanged samples' by more than margin x gap, after Holm's
    correction over every file and trait compared.
    """

    trait: str
    source: str
    n_changed: int
    n_unchanged: int
    mean_changed: float
    mean_unchanged: float
    effect: float  # (mean_changed - mean_unchanged) / gap
    margin: float
    p_value: float
    adjusted_p: float
    flagged: bool


@dataclass(frozen=True)
class RunSettings:
    """The settings a report records: those that change its numbers, and what was applied after.

    ``shard`` is set on a ``--shard`` run, ``baseline`` (the file's name) where a baseline was
    applied, and the ``changed_*`` fields on a ``--changed-since`` run.
    """

    backend: str
    max_new_tokens: int
    max_tokens: int
    batch_size: int
    seed: int
    temperature: float
    fail_on: str
    dataset_fpr: float
    fdr: float
    dtype: str = "float32"  # the number format the model ran in (older reports: float32)
    shard: ShardInfo | None = None
    baseline: str | None = None
    changed_since: str | None = None
    changed_samples: int | None = None
    changed_comparisons: tuple[ChangeComparison, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON report's ``settings``: the optional fields only where they are set."""
        entry = dataclasses.asdict(self)
        return {key: value for key, value in entry.items() if value is not None}

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> RunSettings:
        """Read back :meth:`as_dict` (the ``settings`` of a JSON report)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(entry) - names)
        if unknown:
            raise ValueError(f"unknown settings {', '.join(unknown)}")
        values = dict(entry)
        if isinstance(values.get("shard"), Mapping):
            values["shard"] = ShardInfo(**values["shard"])
        if values.get("changed_comparisons") is not None:
            values["changed_comparisons"] = tuple(
                ChangeComparison(**c) for c in values["changed_comparisons"]
            )
        return cls(**values)


@dataclass(frozen=True)
class ScreenResult:
    """Everything one screening run produced. Reporters read only this."""

    tool_version: str
    model: ModelInfo
    settings: RunSettings
    vectors: tuple[VectorInfo, ...]
    rules: tuple[RuleInfo, ...]
    sources: tuple[str, ...]  # display paths, relative to the repo root
    samples: Sequence[SampleScore]  # a tuple, or the run's spool on disk (datalint_persona.screening.spool)
    summaries: tuple[DatasetSummary, ...]
    findings: tuple[Finding, ...]
    invalid: tuple[InvalidRecord, ...]
    started_at: str  # ISO 8601 UTC
    finished_at: str
    warnings: tuple[str, ...] = ()
    # y' cache hits/misses/corrupted of this run, and the scoring counts of ScoringStats.as_dict().
    # Not part of reports: they differ between a first run and a re-run, and reports of the same
    # inputs must be identical.
    cache_stats: dict[str, int] = field(default_factory=dict)
    # Per trait, the calibration ΔP values of the vector's held-out pairs ("normal", "trait"), when
    # the vector stores them at the rule's layer; the HTML report plots them. In the JSON report
    # (so that a saved report renders the same HTML), not in SARIF.
    calibration: dict[str, dict[str, tuple[float, ...]]] = field(default_factory=dict)
    inputs: tuple[InputInfo, ...] = ()  # each input as read

    def worst_level(self) -> str:
        """The highest level among findings that are not baselined ("none" if there are none)."""
        levels = [f.level for f in self.findings if not f.baselined]
        return max(levels, key=LEVEL_ORDER.__getitem__, default="none")
