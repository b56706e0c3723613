"""GitHub Actions workflow commands (``--format github``): one annotation line per finding.

Printed in a workflow step, each line becomes an annotation on the run and, for a file the pull
request changed, on its diff, with no SARIF upload or ``security-events`` permission needed::

    ::error file=data/train.jsonl,line=3,title=persona/evil::Sample pulls toward 'evil': ΔP 4 exceeds …

A finding's level picks the command (note → ``notice``); baselined findings are left out; a
dataset-level finding names only its file. Properties and the message are escaped as GitHub's
toolkit does, so no text from a dataset can end a command early or start another one. GitHub shows
only the first annotations of each level per step, so the most severe findings come first.
"""

from __future__ import annotations

from datalint_persona.reporters.summary import INVALID_RECORD_RULE_ID, finding_message, ranked_sample_findings
from datalint_persona.run_records import ScreenResult
from datalint_persona.types import Finding

__all__ = ["COMMAND", "escape_data", "escape_property", "render_github"]

COMMAND = {"error": "error", "warning": "warning", "note": "notice"}


def escape_data(text: str) -> str:
    """Escape a workflow command's message: ``%``, carriage return and line feed.

    >>> escape_data("100%\\nsure")
    '100%25%0Asure'
    """
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value: as the message, and also ``:`` and ``,``.

    >>> escape_property("data/a,b:c.jsonl")
    'data/a%2Cb%3Ac.jsonl'
    """
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(result: ScreenResult) -> str:
    """Render ``result`` as GitHub Actions workflow commands, one line per unbaselined finding.

    >>> from datalint_persona.types import Finding
    >>> from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
    >>> model = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
    >>> settings = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", 0.05, 0.05)
    >>> f = Finding("persona/evil", "error", "sample", "d.jsonl", 3, "Evil: ΔP 4.", "evil", 4.0, 1.0)
    >>> r = ScreenResult("0", model, settings, (), (), (), (), (), (f,), (), "t0", "t1")
    >>> print(render_github(r), end="")
    ::error file=d.jsonl,line=3,title=persona/evil::Evil: ΔP 4.
    """
    datasets = [f for f in result.findings if f.kind == "dataset"]
    invalid = [f for f in result.findings if f.kind == "invalid"]
    ordered = [*datasets, *ranked_sample_findings(result), *invalid]
    lines = [_command(f, finding_message(f)) for f in ordered if not f.baselined]
    covered = {(f.source, f.line) for f in invalid}
    for record in result.invalid:  # skipped records that no finding reports (as in SARIF)
        if (record.source, record.line) in covered:
            continue
        text = f"Invalid record: {record.problem}" + (f" Fix: {record.fix}" if record.fix else "")
        record_finding = Finding(
            INVALID_RECORD_RULE_ID, "warning", "invalid", record.source, record.line, text
        )
        lines.append(_command(record_finding, text))
    return "".join(line + "\n" for line in lines)


def _command(finding: Finding, message: str) -> str:
    properties = [f"file={escape_property(finding.source)}"]
    if finding.kind != "dataset":  # a dataset-level finding is about the whole file
        properties.append(f"line={max(finding.line, 1)}")
    properties.append(f"title={escape_property(finding.rule_id)}")
    return f"::{COMMAND[finding.level]} {','.join(properties)}::{escape_data(message)}"
