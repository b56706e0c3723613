"""Frozen records that flow between the stages of a screening run.

load -> Sample -> (generate) Generation -> (capture + score) SampleScore
     -> (rules) Finding -> reporters
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

Role = Literal["system", "user", "assistant"]
Level = Literal["note", "warning", "error"]
LEVEL_ORDER: dict[str, int] = {"none": 0, "note": 1, "warning": 2, "error": 3}


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class InlineIgnore:
    """A record's own suppression, its ``"persona_lint": {"ignore": [...], "reason": "..."}`` key.

    ``traits`` is None for ``"all"``. The key is metadata: it is not part of the text screened
    nor of the content hash.

    >>> InlineIgnore(("evil",), "villain dialogue").covers("evil"), InlineIgnore(None, "r").covers("x")
    (True, True)
    """

    traits: tuple[str, ...] | None
    reason: str

    def covers(self, trait: str | None) -> bool:
        return self.traits is None or trait in self.traits


@dataclass(frozen=True, slots=True)
class Sample:
    """One training example: a prompt x (all turns before the last assistant turn) and a response y.

    ``source`` is the path as reports show it and ``line`` the 1-based line (JSONL) or row
    (JSON array, CSV, Parquet, Hugging Face dataset) that the sample came from. ``ignore`` is
    the record's own suppression, where it has one.
    """

    source: str
    line: int
    prompt: tuple[Message, ...]
    response: str
    ignore: InlineIgnore | None = None

    @property
    def content_hash(self) -> str:
        """A stable sha256 of the sample's content, independent of where it sits in a file.

        >>> s = Sample("a.jsonl", 1, (Message("user", "hi"),), "hello")
        >>> s.content_hash == Sample("b.jsonl", 9, (Message("user", "hi"),), "hello").content_hash
        True
        """
        canonical = json.dumps(
            {"prompt": [[m.role, m.content] for m in self.prompt], "response": self.response},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def response_length(self) -> int | None:
        """The response's length in characters, which the clean null's scale depends on."""
        return len(self.response)


@dataclass(frozen=True, slots=True)
class ReportedSample(Sample):
    """A sample known only from a report: its place, content hash and length, not its text."""

    reported_hash: str = ""
    reported_length: int | None = None

    @property
    def content_hash(self) -> str:
        return self.reported_hash

    @property
    def response_length(self) -> int | None:
        return self.reported_length


@dataclass(frozen=True)
class InvalidRecord:
    """A record that could not become a Sample (kept when ``--skip-invalid`` is on)."""

    source: str
    line: int
    problem: str
    fix: str | None = None


@dataclass(frozen=True)
class Direction:
    """A trait's unit vector at the layer its rule reads (float64, shape (hidden_size,))."""

    trait: str
    layer: int
    unit: np.ndarray

    @property
    def key(self) -> str:
        """``"layer:sha256 of the float64 bytes"``: names this exact direction in caches and recordings."""
        import numpy as np

        digest = hashlib.sha256(np.ascontiguousarray(self.unit, dtype=np.float64).tobytes()).hexdigest()
        return f"{self.layer}:{digest}"


def token_digest(token_ids: Sequence[int]) -> str:
    """sha256 of token ids (as little-endian int64), to compare token sequences without keeping them."""
    payload = b"".join(int(t).to_bytes(8, "little", signed=True) for t in token_ids)
    return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True)
class RecordedProjections:
    """A response's mean activation projected onto unit vectors, recorded while it was generated.

    The model was fed ``n_tokens`` tokens (digest ``tokens_sha256``): the prompt's, then from
    ``response_start`` on the response's. Scoring uses ``values`` (one per direction in
    ``direction_keys``) only where tokenizing the rendered conversation gives exactly these tokens
    (see :func:`datalint_persona.screening.scoring.recorded_matches`).
    """

    tokens_sha256: str
    n_tokens: int
    response_start: int
    direction_keys: tuple[str, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class Generation:
    """The base model's own response y' to a prompt.

    ``recorded`` is set only by a backend asked to record projections while generating; it is
    never cached.
    """

    text: str
    n_tokens: int
    hit_token_limit: bool
    recorded: RecordedProjections | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TraitScore:
    """Projections of one sample onto one trait's unit persona vector at the rule's layer."""

    trait: str
    layer: int
    projection_y: float
    projection_y_prime: float
    delta_p: float
    z: float | None  # ΔP standardized by the clean null (its centre and scale), where calibrated
    # One-sided p-value that an ordinary answer pulls this far (clean null, and outlier in its own
    # file), and its Benjamini-Hochberg q-value over the run; None where the rule has no null.
    p_value: float | None = None
    q_value: float | None = None


@dataclass(frozen=True, slots=True)
class SampleScore:
    sample: Sample
    index: int
    y_prime: str
    y_prime_hit_token_limit: bool
    truncated: bool
    scores: tuple[TraitScore, ...]

    def for_trait(self, trait: str) -> TraitScore:
        for score in self.scores:
            if score.trait == trait:
                return score
        raise KeyError(trait)


@dataclass(frozen=True)
class DatasetSummary:
    """Dataset-level ΔP for one trait over one source file."""

    trait: str
    source: str
    n_samples: int
    mean_delta_p: float
    ci_low: float
    ci_high: float
    mean_projection_y: float
    mean_projection_y_prime: float
    threshold: float | None = None  # the mean ΔP the dataset must clear (margin x gap, or a set threshold)
    flagged: bool = False
    # mean ΔP as a fraction of the calibrated gap between trait and normal answers ("40% of the way
    # toward the trait"), and the margin (as such a fraction) a dataset must clear to be flagged.
    effect: float | None = None
    effect_low: float | None = None
    effect_high: float | None = None
    margin: float | None = None
    # The test: samples it used (those not flagged one by one), its one-sided p-value, and that
    # p-value after Holm's correction over every file and trait of the run.
    n_tested: int | None = None
    p_value: float | None = None
    adjusted_p: float | None = None
    # "flagged", "ok", "too-few-samples" (n below the minimum: no verdict), or "uncalibrated"
    status: str = "ok"


@dataclass(frozen=True)
class Finding:
    """Something a rule reports: a flagged sample, a flagged dataset, or an invalid record."""

    rule_id: str
    level: Level
    kind: Literal["sample", "dataset", "invalid"]
    source: str
    line: int
    message: str
    trait: str | None = None
    delta_p: float | None = None
    threshold: float | None = None
    z: float | None = None
    content_hash: str | None = None
    excerpt: str | None = None
    y_prime_excerpt: str | None = None
    baselined: bool = False
    extra: dict[str, float] = field(default_factory=dict)
    justification: str | None = None  # why it is baselined: the baseline file or a suppression's reason
    suppressed_in_source: bool = False  # baselined by the record's own "persona_lint" key


@dataclass(frozen=True)
class RuleInfo:
    """A rule as reporters see it (see ``datalint_persona.verdicts.rules`` for where it comes from)."""

    id: str
    trait: str
    name: str
    description: str
    level: Level
    layer: int
    sample_threshold: float | None  # None: samples are flagged by FDR against the clean null
    dataset_threshold: float | None  # None: margin x gap from calibration
    help_uri: str
    calibration_mean: float | None = None  # the clean null's centre (ΔP), where calibrated
    calibration_std: float | None = None  # the clean null's scale
    enabled: bool = True
    null_df: float | None = None  # degrees of freedom of the clean null (a Student t)
    gap: float | None = None  # mean ΔP of trait answers minus that of normal answers (calibration pairs)
    margin: float | None = None  # the dataset margin, as a fraction of gap
    # ΔP's reference: this weight of proj(y'), the rest the model's mean own-answer projection
    # (datalint_persona.screening.reference); 1 and 0 are the paper's ΔP.
    reference_weight: float = 1.0
    reference_mean: float = 0.0
    # (df, loc, scale) of the Student t of the model's own answers' ΔP, where the weight is below 1.
    own_answer_null: tuple[float, float, float] | None = None
    # The clean null's scale at a response of n characters is calibration_std * sqrt(1 + this / n).
    null_length_scale: float = 0.0
