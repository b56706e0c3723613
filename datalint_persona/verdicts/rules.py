"""Rules: one per trait, with an id, a layer, a level, and how its verdicts are decided.

Defaults come from the shipped ``rules/*.yaml``. ``calibrated`` means "take it from the vector's
sidecar", which ``persona-lint calibrate`` fills in for the model the vector was built for: the
clean null behind the sample verdicts, the trait-vs-normal gap and the dataset margin (see
:mod:`datalint_persona.verdicts.decide`). A config file's ``rules:`` section and CLI options override both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from datalint_persona._bundled import bundled
from datalint_persona.errors import ConfigError
from datalint_persona.persona.vectors import PersonaVector
from datalint_persona.stats import CleanNull
from datalint_persona.types import RuleInfo

RULES_DOC = "docs/rules.md"  # where each rule is documented, relative to persona-lint's repository
INVALID_RECORD_RULE = RuleInfo(
    id="persona-lint/invalid-record",
    trait="",
    name="InvalidRecord",
    description="A record could not be read as a training sample (reported with --skip-invalid).",
    level="error",
    layer=0,
    sample_threshold=None,
    dataset_threshold=None,
    help_uri=f"{RULES_DOC}#invalid-record",
)


@dataclass(frozen=True)
class RuleDefault:
    id: str
    trait: str
    name: str
    description: str
    level: str
    layer: int | str = "calibrated"
    sample_threshold: float | str = "calibrated"
    dataset_threshold: float | str = "calibrated"
    margin: float | str = "calibrated"


def _rule_schema() -> dict[str, Any]:
    text = resources.files("datalint_persona").joinpath("schemas/rule.schema.json").read_text()
    return dict(json.loads(text))


def shipped_rules() -> dict[str, RuleDefault]:
    """The rules in the shipped ``rules/`` folder, keyed by trait."""
    import jsonschema

    rules: dict[str, RuleDefault] = {}
    validator = jsonschema.Draft202012Validator(_rule_schema())
    for entry in sorted(bundled("rules").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        data = yaml.safe_load(entry.read_text(encoding="utf-8"))
        problems = list(validator.iter_errors(data))
        if problems:
            raise ConfigError(f"rules/{entry.name}: {problems[0].message}.", fix="fix the rule file.")
        rules[data["trait"]] = RuleDefault(
            id=data["id"],
            trait=data["trait"],
            name=data["name"],
            description=data["description"].strip(),
            level=data["level"],
            layer=data.get("layer", "calibrated"),
            sample_threshold=data.get("sample-threshold", "calibrated"),
            dataset_threshold=data.get("dataset-threshold", "calibrated"),
            margin=data.get("margin", "calibrated"),
        )
    return rules


def default_rule_for(trait: str) -> RuleDefault:
    """A rule for a trait with no shipped rule file (a user-built vector)."""
    return RuleDefault(
        id=f"persona/{trait}",
        trait=trait,
        name="".join(part.capitalize() for part in trait.replace("_", "-").split("-")) + "PersonaShift",
        description=f"The data pulls the model toward the '{trait}' persona relative to its own answers.",
        level="error",
    )


# The dataset margin of a vector whose calibration sets none, as a fraction of its gap.
DEFAULT_MARGIN = 0.5


def resolve_rule(default: RuleDefault, vector: PersonaVector, overrides: Mapping[str, Any]) -> RuleInfo:
    """Merge rule file, vector calibration and overrides into the rule a run applies.

    A sample threshold or dataset threshold given in the rule file or an override replaces the
    statistical verdict (FDR against the clean null, margin x gap) with a fixed ΔP threshold.
    """
    calibration = vector.calibration
    where = f"rule {default.id}"

    def fixed(key: str, file_value: Any) -> float | None:
        value = overrides.get(key, file_value)
        return None if value == "calibrated" else float(value)

    layer = int(
        overrides.get("layer", vector.chosen_layer if default.layer == "calibrated" else default.layer)
    )
    if not 0 <= layer <= vector.num_layers:
        raise ConfigError(
            f"{where}: layer {layer} is out of range for a {vector.num_layers}-layer model.",
            fix=f"pick a layer in 0..{vector.num_layers}.",
        )
    sample_threshold = fixed("sample-threshold", default.sample_threshold)
    dataset_threshold = fixed("dataset-threshold", default.dataset_threshold)
    # Calibration statistics apply only at the layer they were measured at.
    calibrated_here = calibration.layer == layer
    null = calibration.null if calibrated_here else None
    gap = calibration.gap if calibrated_here else None
    if sample_threshold is None and null is None:
        raise ConfigError(
            f"{where}: the vector {vector.path or vector.trait} has no calibration at layer {layer}.",
            fix=f"run 'persona-lint calibrate' (at layer {layer}), or set rules.{default.trait}.sample-threshold.",
        )
    margin = overrides.get("margin", default.margin)
    if margin == "calibrated":
        margin = calibration.margin if calibrated_here and calibration.margin is not None else DEFAULT_MARGIN
    return RuleInfo(
        id=default.id,
        trait=default.trait,
        name=default.name,
        description=default.description,
        level=overrides.get("level", default.level),
        layer=layer,
        sample_threshold=sample_threshold,
        dataset_threshold=dataset_threshold,
        help_uri=f"{RULES_DOC}#{default.trait}",
        calibration_mean=null.loc if null else None,
        calibration_std=null.scale if null else None,
        enabled=bool(overrides.get("enabled", True)),
        null_df=null.df if null else None,
        gap=gap,
        margin=float(margin),
        reference_weight=calibration.reference_weight if calibrated_here else 1.0,
        reference_mean=calibration.reference_mean if calibrated_here else 0.0,
        own_answer_null=_triple(calibration.own_answer_null) if calibrated_here else None,
        null_length_scale=null.length_scale if null else 0.0,
    )


def _triple(null: CleanNull | None) -> tuple[float, float, float] | None:
    return None if null is None else (null.df, null.loc, null.scale)
