"""Baselines (``--baseline FILE`` / ``--write-baseline FILE``) and suppressions.

A baseline lists findings that are accepted, so that a legacy dataset does not fail every pull
request: only new findings count. Findings are matched by rule id and fingerprint (a sample's
content hash), never by line, so moving a sample keeps it baselined and editing it makes it new.
Suppressions name a sample's content hash (and optionally one rule) with a required
justification; they live in the same file. The layout is ``datalint_persona/schemas/baseline.schema.json``.
A finding that its record's own ``persona_lint`` key suppresses keeps that reason, and is never
written to a baseline (see :mod:`datalint_persona.verdicts.inline_ignore`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from datalint_persona.atomic import atomic_write_bytes
from datalint_persona.errors import ConfigError
from datalint_persona.run_records import ScreenResult
from datalint_persona.types import Finding

__all__ = [
    "BASELINE_SCHEMA_ID",
    "Baseline",
    "apply_baseline",
    "finding_fingerprint",
    "read_baseline",
    "write_baseline",
]

BASELINE_SCHEMA_ID = "persona-lint/baseline/v1"
BASELINE_JUSTIFICATION = "Accepted in the persona-lint baseline file; it is not a new finding."


@dataclass(frozen=True)
class Baseline:
    accepted: frozenset[tuple[str, str]]  # (rule_id, fingerprint)
    suppressions: tuple[dict[str, str], ...]  # content_hash, justification, optional rule_id


def finding_fingerprint(finding: Finding) -> str:
    """What identifies a finding across runs: the sample's content hash for sample findings,
    sha256 of source and trait for dataset findings, of source and message for invalid records.

    >>> f = Finding("persona-lint/evil", "error", "dataset", "d.jsonl", 1, "m", "evil")
    >>> finding_fingerprint(f) == hashlib.sha256(b"d.jsonl\\x00evil").hexdigest()
    True
    """
    if finding.kind == "sample" and finding.content_hash:
        return finding.content_hash
    second = finding.trait or "" if finding.kind == "dataset" else finding.message
    return hashlib.sha256(f"{finding.source}\x00{second}".encode()).hexdigest()


def _schema() -> dict[str, Any]:
    text = resources.files("datalint_persona").joinpath("schemas/baseline.schema.json").read_text()
    return dict(json.loads(text))


def read_baseline(path: str) -> Baseline:
    """Read and validate a baseline file; errors name the file, the entry and the fix."""
    import jsonschema

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"The baseline file '{path}' does not exist.",
            fix=f"create it with --write-baseline {path}, or fix the path.",
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(
            f"{path}: not a readable JSON baseline ({error}).",
            fix=f"regenerate it with --write-baseline {path}.",
        ) from None
    errors = sorted(
        jsonschema.Draft202012Validator(_schema()).iter_errors(data), key=lambda e: list(e.absolute_path)
    )
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top level)"
        raise ConfigError(
            f"{path}: at '{where}': {errors[0].message}.",
            fix="see datalint_persona/schemas/baseline.schema.json (every suppression needs a "
            "content_hash and a justification).",
        )
    accepted = frozenset((str(e["rule_id"]), str(e["fingerprint"])) for e in data["findings"])
    suppressions = tuple(dict(s) for s in data.get("suppressions", []))
    return Baseline(accepted, suppressions)


def _suppression_for(finding: Finding, baseline: Baseline) -> str | None:
    for suppression in baseline.suppressions:
        if (
            suppression["content_hash"] == finding.content_hash
            and suppression.get("rule_id", finding.rule_id) == finding.rule_id
        ):
            return suppression["justification"]
    return None


def apply_baseline(result: ScreenResult, baseline: Baseline, path: str) -> ScreenResult:
    """Mark findings the baseline accepts or a suppression covers as baselined."""
    findings = []
    for finding in result.findings:
        if finding.suppressed_in_source:  # the data's own reason stands
            findings.append(finding)
            continue
        justification = _suppression_for(finding, baseline) if finding.content_hash else None
        if justification is not None:
            findings.append(replace(finding, baselined=True, justification=justification))
        elif (finding.rule_id, finding_fingerprint(finding)) in baseline.accepted:
            findings.append(replace(finding, baselined=True, justification=BASELINE_JUSTIFICATION))
        else:
            findings.append(finding)
    settings = replace(result.settings, baseline=Path(path).name)
    return replace(result, findings=tuple(findings), settings=settings)


def write_baseline(result: ScreenResult, path: str) -> int:
    """Write every finding of ``result`` as accepted (keeping the file's suppressions); the count."""
    suppressions: list[dict[str, str]] = []
    if Path(path).is_file():
        suppressions = list(read_baseline(path).suppressions)
    entries = {
        (f.rule_id, finding_fingerprint(f)): {
            "rule_id": f.rule_id,
            "fingerprint": finding_fingerprint(f),
            "kind": f.kind,
            "source": f.source,
            "line": f.line,
            "trait": f.trait,
            "delta_p": f.delta_p,
        }
        for f in result.findings
        if not f.suppressed_in_source
        and (f.justification is None or f.justification == BASELINE_JUSTIFICATION)
    }
    document = {
        "schema": BASELINE_SCHEMA_ID,
        "tool_version": result.tool_version,
        "findings": [entries[key] for key in sorted(entries)],
        "suppressions": suppressions,
    }
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_bytes(Path(path).resolve(), text.encode("utf-8"))
    return len(entries)
