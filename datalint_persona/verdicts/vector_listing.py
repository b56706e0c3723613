"""``persona-lint vectors list``: each vector of a run, with the rule and verdict policy it gets.

One row per vector: its trait and rule (level and layer after the config), its file, whether it
is calibrated at that layer, its held-out AUROC, and how its sample and dataset verdicts are
decided (FDR / margin against the calibration, or a fixed ΔP threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from datalint_persona.errors import ConfigError
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.settings import ScreenOptions
from datalint_persona.types import RuleInfo
from datalint_persona.verdicts.datasets import margin_bound
from datalint_persona.verdicts.rules import default_rule_for, resolve_rule, shipped_rules

__all__ = ["VectorListing", "list_vectors"]


@dataclass(frozen=True)
class VectorListing:
    """One vector as a run with these settings would apply it."""

    trait: str
    rule_id: str
    level: str
    enabled: bool
    layer: int
    path: str
    calibrated: bool  # the vector's calibration was measured at ``layer``
    auroc: float | None  # held-out AUROC of ΔP (None: not calibrated)
    sample_policy: str
    dataset_policy: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def list_vectors(vectors: Sequence[PersonaVector], options: ScreenOptions) -> list[VectorListing]:
    """Resolve each vector's rule as a run with ``options`` would (rule file < vector < overrides).

    A vector that a run would refuse (uncalibrated, with no fixed sample threshold) is listed
    with the policy "uncalibrated" rather than raising, so the listing shows what is missing.
    """
    defaults = shipped_rules()
    rows = []
    for vector in vectors:
        default = defaults.get(vector.trait) or default_rule_for(vector.trait)
        overrides = options.rule_overrides.get(vector.trait, {})
        try:
            rule = resolve_rule(default, vector, overrides)
        except ConfigError:  # no calibration at the rule's layer and no fixed threshold
            rule_id, level = default.id, str(overrides.get("level", default.level))
            enabled = bool(overrides.get("enabled", True))
            layer = int(overrides.get("layer", vector.metadata.get("chosen_layer", -1)))
            sample_policy = dataset_policy = "uncalibrated"
        else:
            rule_id, level, enabled, layer = rule.id, rule.level, rule.enabled, rule.layer
            sample_policy, dataset_policy = _policies(rule, options)
        calibrated = vector.calibration.layer == layer
        rows.append(
            VectorListing(
                trait=vector.trait,
                rule_id=rule_id,
                level=level,
                enabled=enabled,
                layer=layer,
                path=str(vector.path),
                calibrated=calibrated,
                auroc=vector.calibration.auroc if calibrated else None,
                sample_policy=sample_policy,
                dataset_policy=dataset_policy,
            )
        )
    return rows


def _policies(rule: RuleInfo, options: ScreenOptions) -> tuple[str, str]:
    """How a run decides the rule's sample and dataset verdicts."""
    if rule.sample_threshold is not None:
        sample_policy = f"fixed ΔP > {rule.sample_threshold:g}"
    else:
        sample_policy = f"FDR {options.fdr:g} vs clean null"
    if rule.dataset_threshold is not None:
        dataset_policy = f"fixed mean ΔP > {rule.dataset_threshold:g}"
    elif (bound := margin_bound(rule)) is not None:
        # The file's mean ΔP must be shown above margin x gap (Holm over files x traits).
        dataset_policy = f"margin {rule.margin:.3g} x gap = {bound:.3g} (FWER {options.dataset_fpr:g})"
    else:
        dataset_policy = "none (no calibrated gap)"
    return sample_policy, dataset_policy
