"""GitLab Code Quality report (``--format gitlab``): the CodeClimate subset GitLab reads.

One issue per finding that is not baselined, with ``description``, ``check_name``, ``fingerprint``,
``severity`` and ``location.path`` / ``location.lines.begin``. The fingerprint rests on the rule and
the sample's content hash, so a merge request's widget shows only findings it introduced.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

from datalint_persona.reporters.summary import finding_message
from datalint_persona.run_records import ScreenResult
from datalint_persona.verdicts.baseline import finding_fingerprint

__all__ = ["SEVERITY", "render_gitlab"]

SEVERITY = {"note": "info", "warning": "minor", "error": "major"}


def render_gitlab(result: ScreenResult) -> str:
    """Render ``result`` as a GitLab Code Quality JSON array.

    >>> from datalint_persona.types import Finding
    >>> from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
    >>> model = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
    >>> settings = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", 0.05, 0.05)
    >>> f = Finding("persona-lint/evil", "error", "sample", "d.jsonl", 3, "m", "evil", 4.0, 1.0, None, "ab" * 32)
    >>> r = ScreenResult("0", model, settings, (), (), (), (), (), (f,), (), "t0", "t1")
    >>> issue = json.loads(render_gitlab(r))[0]
    >>> issue["severity"], issue["location"], issue["check_name"]
    ('major', {'path': 'd.jsonl', 'lines': {'begin': 3}}, 'persona-lint/evil')
    """
    issues = []
    seen: Counter[str] = Counter()
    for finding in result.findings:
        if finding.baselined:
            continue
        identity = f"{finding.rule_id}\x00{finding.source}\x00{finding_fingerprint(finding)}"
        seen[identity] += 1  # the same content twice in one file: keep both issues apart
        fingerprint = hashlib.sha256(f"{identity}\x00{seen[identity]}".encode()).hexdigest()
        issues.append(
            {
                "description": finding_message(finding),
                "check_name": finding.rule_id,
                "fingerprint": fingerprint,
                "severity": SEVERITY[finding.level],
                "location": {"path": finding.source, "lines": {"begin": max(finding.line, 1)}},
            }
        )
    return json.dumps(issues, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
