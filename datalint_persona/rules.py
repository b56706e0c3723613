"""Rules: one per trait, with an id, a layer, thresholds and a level.

Defaults come from the shipped ``rules/*.yaml``. ``calibrated`` means "take it from the vector's
sidecar", which ``persona-lint calibrate`` fills in for the model the vector was built for. A config
file's ``rules:`` section and CLI options override both.
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
from datalint_persona.types import RuleInfo
from datalint_persona.vectors import PersonaVector

PROJECT_URL = "https://github.com/persona-lint/persona-lint"
INVALID_RECORD_RULE = RuleInfo(
    id="persona-lint/invalid-record",
    trait="",
    name="InvalidRecord",
    description="A record could not be read as a training sample (reported with --skip-invalid).",
    level="error",
    layer=0,
    sample_threshold=0.0,
    dataset_threshold=0.0,
    help_uri=f"{PROJECT_URL}/blob/main/docs/rules.md#invalid-record",
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


def resolve_rule(default: RuleDefault, vector: PersonaVector, overrides: Mapping[str, Any]) -> RuleInfo:
    """Merge rule file, vector calibration and overrides into the rule a run applies."""
    calibration = vector.calibration
    where = f"rule {default.id}"

    def pick(key: str, file_value: Any, calibrated_key: str) -> Any:
        if key in overrides:
            return overrides[key]
        if file_value != "calibrated":
            return file_value
        if calibrated_key == "layer":
            return vector.chosen_layer
        value = calibration.get(calibrated_key)
        if value is None:
            raise ConfigError(
                f"{where}: no {key} is set and the vector {vector.path or vector.trait} was not calibrated.",
                fix=f"run 'persona-lint calibrate', or set rules.{default.trait}.{key} in .persona-lint.yaml.",
            )
        return value

    layer = int(pick("layer", default.layer, "layer"))
    if not 0 <= layer <= vector.num_layers:
        raise ConfigError(
            f"{where}: layer {layer} is out of range for a {vector.num_layers}-layer model.",
            fix=f"pick a layer in 0..{vector.num_layers}.",
        )
    # Calibration statistics apply only at the layer they were measured at.
    calibrated_here = calibration.get("layer") == layer
    sample_threshold = pick("sample-threshold", default.sample_threshold, "sample_threshold")
    if (
        "sample-threshold" not in overrides
        and default.sample_threshold == "calibrated"
        and not calibrated_here
    ):
        raise ConfigError(
            f"{where}: the vector was calibrated at layer {calibration.get('layer')}, not {layer}.",
            fix=f"set rules.{default.trait}.sample-threshold, or recalibrate at layer {layer}.",
        )
    dataset_threshold = overrides.get("dataset-threshold", default.dataset_threshold)
    return RuleInfo(
        id=default.id,
        trait=default.trait,
        name=default.name,
        description=default.description,
        level=overrides.get("level", default.level),
        layer=layer,
        sample_threshold=float(sample_threshold),
        # None: computed per dataset size from calibration (see stats.clean_dataset_threshold).
        dataset_threshold=None if dataset_threshold == "calibrated" else float(dataset_threshold),
        help_uri=f"{PROJECT_URL}/blob/main/docs/rules.md#{default.trait}",
        calibration_mean=calibration.get("normal_mean") if calibrated_here else None,
        calibration_std=calibration.get("normal_std") if calibrated_here else None,
        enabled=bool(overrides.get("enabled", True)),
    )
