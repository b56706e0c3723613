"""Trait definition files (``traits/*.yaml``): load, validate, and turn pairs into typed records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from datalint_persona._bundled import bundled
from datalint_persona.errors import ConfigError
from datalint_persona.types import Message


@dataclass(frozen=True)
class TraitPair:
    """One prompt with a trait-exhibiting (positive) and a normal (negative) answer."""

    id: str
    style: str
    prompt: tuple[Message, ...]
    positive: str
    negative: str
    confusable: str | None = None
    # The conversation before the negative answer where it is not ``prompt``: unpaired data, such
    # as a public set's trait answers and clean answers to other questions (pair files only).
    negative_prompt: tuple[Message, ...] | None = None

    @property
    def negative_context(self) -> tuple[Message, ...]:
        """The conversation the negative answer responds to."""
        return self.prompt if self.negative_prompt is None else self.negative_prompt


@dataclass(frozen=True)
class TraitDefinition:
    trait: str
    description: str
    instructions: tuple[tuple[str, str], ...]  # (positive, negative) system prompts
    extraction_questions: tuple[str, ...]
    evaluation_questions: tuple[str, ...]
    trait_rubric: str
    coherence_rubric: str
    pairs: tuple[TraitPair, ...]
    calibration: tuple[TraitPair, ...]
    path: str


def trait_schema() -> dict[str, Any]:
    text = resources.files("datalint_persona").joinpath("schemas/trait.schema.json").read_text()
    return dict(json.loads(text))


def validate_trait(data: Any, where: str) -> None:
    """Schema validation plus the checks a schema can't express; errors name the entry and fix."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(trait_schema())
    problems = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if problems:
        first = problems[0]
        key = ".".join(str(p) for p in first.absolute_path) or "(top level)"
        raise ConfigError(f"{where}: '{key}': {first.message}.", fix="see traits/README.md.")
    ids = [p["id"] for p in (*data.get("pairs", []), *data.get("calibration", []))]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"{where}: duplicate pair ids {duplicates}.", fix="make every id unique.")
    for pair in (*data.get("pairs", []), *data.get("calibration", [])):
        messages = pair.get("messages")
        if messages and messages[-1]["role"] != "user":
            raise ConfigError(
                f"{where}: pair {pair['id']}: messages must end with a user turn.",
                fix="end the conversation with the question the answers respond to.",
            )


def _messages(raw: list[dict[str, Any]]) -> tuple[Message, ...]:
    return tuple(Message(m["role"], m["content"]) for m in raw)


def _pair(raw: dict[str, Any]) -> TraitPair:
    prompt = _messages(raw["messages"]) if "messages" in raw else (Message("user", raw["question"]),)
    negative_prompt = _messages(raw["negative_messages"]) if "negative_messages" in raw else None
    return TraitPair(
        raw["id"],
        raw["style"],
        prompt,
        raw["positive"],
        raw["negative"],
        raw.get("confusable"),
        negative_prompt,
    )


def load_trait(path: str | Path) -> TraitDefinition:
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{file}: can't read the trait file ({error}).", fix="check the file.") from None
    validate_trait(data, str(file))
    return TraitDefinition(
        trait=data["trait"],
        description=" ".join(data["description"].split()),
        instructions=tuple((i["positive"], i["negative"]) for i in data["instructions"]),
        extraction_questions=tuple(data["questions"]["extraction"]),
        evaluation_questions=tuple(data["questions"]["evaluation"]),
        trait_rubric=data["judge"]["trait_rubric"],
        coherence_rubric=data["judge"]["coherence_rubric"],
        pairs=tuple(_pair(p) for p in data.get("pairs", [])),
        calibration=tuple(_pair(p) for p in data.get("calibration", [])),
        path=str(file),
    )


def shipped_trait_path(name: str) -> Path:
    """The shipped trait file for ``name``, or a path the user gave."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    shipped = Path(str(bundled("traits"))) / f"{name}.yaml"
    if not shipped.is_file():
        available = sorted(p.stem for p in Path(str(bundled("traits"))).glob("*.yaml"))
        raise ConfigError(
            f"No trait named '{name}' (shipped: {', '.join(available)}).",
            fix="pass a shipped trait name or a path to a trait .yaml file.",
        )
    return shipped


NEGATIVE_MESSAGES = (
    "The conversation before the negative answer, where it differs from the positive's (unpaired data)."
)


def load_pair_file(path: str | Path) -> tuple[TraitPair, ...]:
    """Extra extraction pairs from a JSONL file: one pair per line, as in a trait file's ``pairs``
    (``id``, ``style``, ``messages`` or ``question``, ``positive``, ``negative``), except that
    ``style`` may be any short name, and ``negative_messages`` may give the negative answer its own
    conversation (unpaired data). Errors name the file, the line and the fix."""
    import jsonschema

    schema = trait_schema()
    pair = dict(schema["$defs"]["pair"])
    pair["properties"] = {
        **pair["properties"],
        "style": {"type": "string", "minLength": 1},
        "negative_messages": {**pair["properties"]["messages"], "description": NEGATIVE_MESSAGES},
    }
    validator = jsonschema.Draft202012Validator({"$defs": schema["$defs"], **pair})
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{file}: can't read the pair file ({error}).", fix="check the path.") from None
    pairs: list[TraitPair] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{file}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"{where}: not valid JSON ({error.msg}).", fix="one JSON object per line."
            ) from None
        problems = sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path))
        if problems:
            key = ".".join(str(p) for p in problems[0].absolute_path) or "(record)"
            raise ConfigError(f"{where}: '{key}': {problems[0].message}.", fix="see traits/README.md.")
        for key in ("messages", "negative_messages"):
            if raw.get(key) and raw[key][-1]["role"] != "user":
                raise ConfigError(
                    f"{where}: {key} must end with a user turn.",
                    fix="end the conversation with the question the answer responds to.",
                )
        if raw["id"] in seen:
            raise ConfigError(f"{where}: duplicate pair id '{raw['id']}'.", fix="make every id unique.")
        seen.add(raw["id"])
        pairs.append(_pair(raw))
    if not pairs:
        raise ConfigError(f"{file}: no pairs.", fix="write one JSON pair per line.")
    return tuple(pairs)
