"""SARIF 2.1.0 output that validates against the OASIS schema and that GitHub code scanning accepts.

One run; one rule per persona-lint rule plus ``persona-lint/invalid-record``; one result per
finding. Sources are relative to the repository root and sit under the ``%SRCROOT%`` base id.
Only the invocation's start and end times vary between two renders of the same result.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath
from urllib.parse import quote, urlsplit

from datalint_persona.reporters.encoding import dump_json
from datalint_persona.reporters.json_report import TOOL_NAME
from datalint_persona.reporters.summary import (
    INVALID_RECORD_RULE_ID,
    dataset_anchor_lines,
    dataset_fingerprint,
    finding_message,
    format_number,
)
from datalint_persona.run_records import InputInfo, ScreenResult
from datalint_persona.types import Finding, InvalidRecord, RuleInfo

__all__ = [
    "INVALID_RECORD_RULE_ID",
    "SARIF_SCHEMA_URI",
    "SRCROOT",
    "render_sarif",
    "semantic_version",
]

SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"
INVALID_RECORD_DOC = "docs/rules.md#invalid-record"  # as verdicts.rules.INVALID_RECORD_RULE.help_uri
_FINGERPRINT_KEY = "contentHash/v1"

_Json = dict[str, object]


def render_sarif(result: ScreenResult) -> str:
    """Render ``result`` as a SARIF 2.1.0 log (UTF-8 text ending in a newline).

    >>> import json
    >>> from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
    >>> model = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
    >>> settings = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", 0.05, 0.05)
    >>> r = ScreenResult("0.1.0", model, settings, (), (), (), (), (), (), (), "2026-01-01T00:00Z", "2026-01-01T00:01Z")
    >>> log = json.loads(render_sarif(r))
    >>> log["version"], log["runs"][0]["tool"]["driver"]["rules"][0]["id"]
    ('2.1.0', 'persona-lint/invalid-record')
    """
    descriptors = [_rule_descriptor(rule) for rule in result.rules]
    descriptors.append(_invalid_rule_descriptor())
    known = {str(descriptor["id"]) for descriptor in descriptors}
    for finding in result.findings:  # a finding from a rule the run did not describe still needs one
        if finding.rule_id not in known:
            descriptors.append(_fallback_descriptor(finding))
            known.add(finding.rule_id)
    rule_index = {str(descriptor["id"]): index for index, descriptor in enumerate(descriptors)}

    # baselineState compares with a baseline; a suppression written in the data is not one.
    with_baseline = bool(result.settings.baseline) or any(
        f.baselined and not f.suppressed_in_source for f in result.findings
    )
    anchors = dataset_anchor_lines(result)
    results = [_result(finding, rule_index, with_baseline, anchors) for finding in result.findings]
    covered = {(f.source, f.line) for f in result.findings if f.kind == "invalid"}
    results += [
        _invalid_result(record, rule_index[INVALID_RECORD_RULE_ID], with_baseline)
        for record in result.invalid
        if (record.source, record.line) not in covered
    ]

    run: _Json = {
        "tool": {
            "driver": {
                "name": TOOL_NAME,
                "version": result.tool_version,
                "semanticVersion": semantic_version(result.tool_version),
                "rules": descriptors,
            }
        },
        "originalUriBaseIds": {
            SRCROOT: {"description": {"text": "The repository root; dataset paths are relative to it."}}
        },
        "invocations": [_invocation(result)],
        "artifacts": [_artifact(entry) for entry in result.inputs],
        "results": results,
        "properties": {"model": result.model.as_dict()},
    }
    log = {"$schema": SARIF_SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return dump_json(log, result, "SARIF report")


def semantic_version(version: str) -> str:
    """Turn a PEP 440 version into the Semantic Versioning 2.0 form SARIF asks for.

    >>> semantic_version("0.3.1"), semantic_version("1.0"), semantic_version("0.2.0.dev4+g1a2b")
    ('0.3.1', '1.0.0', '0.2.0-dev4+g1a2b')
    """
    match = re.fullmatch(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?([^+]*)(?:\+(.*))?", version.strip())
    if match is None:
        return version
    major, minor, patch, pre, build = match.groups()
    text = f"{major}.{minor or 0}.{patch or 0}"
    pre = re.sub(r"[^0-9A-Za-z.-]", "-", pre.lstrip(".-_"))
    build = re.sub(r"[^0-9A-Za-z.-]", "-", build or "")
    return text + (f"-{pre}" if pre else "") + (f"+{build}" if build else "")


def _rule_descriptor(rule: RuleInfo) -> _Json:
    if rule.sample_threshold is not None:
        samples = f"A sample is flagged when its ΔP exceeds {format_number(rule.sample_threshold)}"
    else:
        samples = (
            "A sample is flagged when its ΔP is unusual for clean answers and for its own file, at the "
            "run's false discovery rate (Benjamini-Hochberg)"
        )
    if rule.dataset_threshold is not None:
        datasets = f"a dataset when its mean ΔP is shown to exceed {format_number(rule.dataset_threshold)}"
    elif rule.margin is not None and rule.gap is not None:
        datasets = (
            f"a dataset when its mean ΔP is shown to exceed {rule.margin:.0%} of the gap between normal and "
            f"trait answers (ΔP {format_number(rule.margin * rule.gap)}), Holm-corrected"
        )
    else:
        datasets = "datasets get no verdict (the vector is not calibrated)"
    thresholds = f"{samples}; {datasets} (layer {rule.layer})."
    properties: _Json = {
        "tags": ["persona", rule.trait],
        "trait": rule.trait,
        "layer": rule.layer,
        "sample_threshold": rule.sample_threshold,
        "dataset_threshold": rule.dataset_threshold,
    }
    for key in ("gap", "margin"):
        if getattr(rule, key) is not None:
            properties[key] = getattr(rule, key)
    if rule.calibration_mean is not None:
        properties["calibration_mean"] = rule.calibration_mean
    if rule.calibration_std is not None:
        properties["calibration_std"] = rule.calibration_std
    configuration: _Json = {"level": rule.level}
    if not rule.enabled:
        configuration["enabled"] = False
    descriptor: _Json = {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": _first_sentence(rule.description)},
        "fullDescription": {"text": rule.description},
        "defaultConfiguration": configuration,
        "help": {"text": f"{rule.description}\n\n{thresholds}{_documented(rule.help_uri)}"},
        "properties": properties,
    }
    if _is_absolute_uri(rule.help_uri):  # SARIF's helpUri must be absolute
        descriptor["helpUri"] = rule.help_uri
    return descriptor


def _is_absolute_uri(text: str) -> bool:
    """Whether ``text`` may be a SARIF ``helpUri`` (an absolute http(s) address).

    >>> _is_absolute_uri("https://example.org/rules#evil"), _is_absolute_uri("docs/rules.md#evil")
    (True, False)
    """
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _documented(help_uri: str) -> str:
    """The help text's pointer to a rule's documentation kept in persona-lint's repository."""
    if not help_uri or _is_absolute_uri(help_uri):
        return ""
    return f"\n\nDocumented in {help_uri} of persona-lint."


def _invalid_rule_descriptor() -> _Json:
    description = (
        "A dataset record could not be read as a training sample (bad JSON, missing or empty "
        "messages, no final assistant turn), so it was skipped and not screened."
    )
    return {
        "id": INVALID_RECORD_RULE_ID,
        "name": "InvalidRecord",
        "shortDescription": {"text": "A dataset record could not be read as a training sample."},
        "fullDescription": {"text": description},
        "defaultConfiguration": {"level": "warning"},
        "help": {
            "text": f"{description}\n\nFix the record as the result's message says, or remove it."
            + _documented(INVALID_RECORD_DOC)
        },
        "properties": {"tags": ["dataset-format"]},
    }


def _fallback_descriptor(finding: Finding) -> _Json:
    return {
        "id": finding.rule_id,
        "name": finding.rule_id,
        "shortDescription": {"text": f"persona-lint rule {finding.rule_id}."},
        "defaultConfiguration": {"level": finding.level},
        "properties": {"trait": finding.trait} if finding.trait else {},
    }


def _result(
    finding: Finding, rule_index: dict[str, int], with_baseline: bool, anchors: dict[tuple[str, str], int]
) -> _Json:
    dataset = finding.kind == "dataset"
    line = anchors.get((finding.source, finding.trait or ""), 1) if dataset else max(finding.line, 1)
    numbers = {
        "trait": finding.trait,
        "delta_p": finding.delta_p,
        "z": finding.z,
        "threshold": finding.threshold,
    }
    properties: _Json = {"kind": finding.kind}
    if dataset:  # the whole file is meant; the line is only where a viewer shows it
        properties["scope"] = "file"
    properties.update({key: value for key, value in numbers.items() if value is not None})
    if finding.extra:
        properties["extra"] = dict(finding.extra)
    sarif_result: _Json = {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index[finding.rule_id],
        "level": finding.level,
        "message": {"text": finding_message(finding)},
        "locations": [_location(finding.source, line)],
        "partialFingerprints": {_FINGERPRINT_KEY: _fingerprint(finding)},
        "properties": properties,
    }
    if with_baseline:
        accepted = finding.baselined and not finding.suppressed_in_source
        sarif_result["baselineState"] = "unchanged" if accepted else "new"
    if finding.suppressed_in_source:
        sarif_result["suppressions"] = [
            {"kind": "inSource", "status": "accepted", "justification": finding.justification or ""}
        ]
    elif finding.baselined:
        sarif_result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": finding.justification
                or "Accepted in the persona-lint baseline file; it is not a new finding.",
            }
        ]
    return sarif_result


def _invalid_result(record: InvalidRecord, index: int, with_baseline: bool) -> _Json:
    text = f"Invalid record: {record.problem}" + (f" Fix: {record.fix}" if record.fix else "")
    sarif_result: _Json = {
        "ruleId": INVALID_RECORD_RULE_ID,
        "ruleIndex": index,
        "level": "warning",
        "message": {"text": text},
        "locations": [_location(record.source, max(record.line, 1))],
        "partialFingerprints": {_FINGERPRINT_KEY: _sha256(record.source, str(record.line), record.problem)},
        "properties": {"kind": "invalid"},
    }
    if with_baseline:
        sarif_result["baselineState"] = "new"
    return sarif_result


def _fingerprint(finding: Finding) -> str:
    if finding.kind == "dataset":
        return dataset_fingerprint(finding.source, finding.trait or "")
    if finding.content_hash:
        return finding.content_hash
    return _sha256(finding.source, str(finding.line), finding.message)


def _location(source: str, line: int) -> _Json:
    return {
        "physicalLocation": {"artifactLocation": _artifact_location(source), "region": {"startLine": line}}
    }


def _artifact_location(source: str) -> _Json:
    path = PurePosixPath(source.replace("\\", "/"))
    if path.is_absolute():  # not under the repository root: no base id, GitHub will not map it
        return {"uri": path.as_uri()}
    return {"uri": quote(path.as_posix(), safe="/"), "uriBaseId": SRCROOT}


def _artifact(entry: InputInfo) -> _Json:
    """An input file with its sha256, so the log is tied to the exact data it describes."""
    artifact: _Json = {"location": _artifact_location(entry.path), "roles": ["analysisTarget"]}
    if entry.sha256:
        artifact["hashes"] = {"sha-256": entry.sha256}
    return artifact


def _invocation(result: ScreenResult) -> _Json:
    invocation: _Json = {
        "executionSuccessful": True,
        "startTimeUtc": result.started_at,
        "endTimeUtc": result.finished_at,
    }
    if result.warnings:
        invocation["toolExecutionNotifications"] = [
            {"level": "warning", "message": {"text": warning}} for warning in result.warnings
        ]
    return invocation


def _first_sentence(text: str) -> str:
    """The first sentence of a rule description, for ``shortDescription``.

    >>> _first_sentence("Flags evil. Uses layer 12.")
    'Flags evil.'
    """
    head, dot, _ = text.strip().partition(". ")
    return head + "." if dot else text.strip()


def _sha256(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()
