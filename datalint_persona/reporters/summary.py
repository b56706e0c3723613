"""What every reporter derives from a ScreenResult: numbers, messages, rankings, dataset verdicts.

Nothing here recomputes a score or re-applies a rule: a dataset is "flagged" when a rule produced a
dataset finding for it, and its threshold is the one that finding names, else the one the engine
recorded in the summary, else the trait's rule's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from datalint_persona.run_records import ScreenResult
from datalint_persona.text import format_number, one_line
from datalint_persona.types import LEVEL_ORDER, DatasetSummary, Finding, RuleInfo

__all__ = [
    "INVALID_RECORD_RULE_ID",
    "DatasetVerdict",
    "dataset_anchor_lines",
    "dataset_fingerprint",
    "dataset_verdicts",
    "finding_message",
    "format_number",
    "one_line",
    "ranked_sample_findings",
    "rule_for_trait",
]

INVALID_RECORD_RULE_ID = "persona-lint/invalid-record"  # the rule id of a record that could not be read


def finding_message(finding: Finding) -> str:
    """The message every format shows for a finding (SARIF, GitLab, GitHub; the HTML and terminal
    tables show the same numbers in columns). The rules write each number into it once.

    >>> from datalint_persona.types import Finding
    >>> finding_message(Finding("r", "error", "sample", "d.jsonl", 3, " Evil: ΔP 4. ", "evil", 4.0))
    'Evil: ΔP 4.'
    """
    return finding.message.strip()


def ranked_sample_findings(result: ScreenResult) -> list[Finding]:
    """Sample findings, most severe level first; within a level highest z first, then findings
    without z by highest ΔP.

    Ties keep file order (source, then line), so the ranking is deterministic.

    >>> from datalint_persona.types import Finding
    >>> from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
    >>> model = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
    >>> settings = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", 0.05, 0.05)
    >>> a = Finding("r", "error", "sample", "d.jsonl", 1, "m", "evil", 1.0, 0.5, 2.0)
    >>> b = Finding("r", "error", "sample", "d.jsonl", 2, "m", "evil", 3.0, 0.5, 5.0)
    >>> c = Finding("r", "error", "sample", "d.jsonl", 3, "m", "evil", 9.0, 0.5, None)
    >>> r = ScreenResult("0", model, settings, (), (), (), (), (), (a, c, b), (), "t0", "t1")
    >>> [f.line for f in ranked_sample_findings(r)]
    [2, 1, 3]
    """
    samples = [f for f in result.findings if f.kind == "sample"]

    def rank(finding: Finding) -> tuple[int, int, float, str, int]:
        severity = -LEVEL_ORDER[finding.level]
        if finding.z is not None:
            return (severity, 0, -finding.z, finding.source, finding.line)
        return (severity, 1, -(finding.delta_p or 0.0), finding.source, finding.line)

    return sorted(samples, key=rank)


def dataset_anchor_lines(result: ScreenResult) -> dict[tuple[str, str], int]:
    """Per (source, trait) of a dataset finding, the line a line-based viewer should show it on.

    GitHub code scanning needs a line for every result and shows a pull request only the results
    on lines of its diff, so a file-level finding points at the sample behind it: the file's
    top-ranked flagged sample of that trait (on a ``--changed-since`` run a changed one, so in the
    diff) that is not baselined, else the file's sample with the highest ΔP for the trait, else line 1.

    >>> from datalint_persona.types import Finding
    >>> from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
    >>> model = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
    >>> settings = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", 0.05, 0.05)
    >>> d = Finding("r", "error", "dataset", "d.jsonl", 1, "m", "evil", 1.0)
    >>> a = Finding("r", "error", "sample", "d.jsonl", 7, "m", "evil", 3.0, None, 5.0)
    >>> dataset_anchor_lines(ScreenResult("0", model, settings, (), (), (), (), (), (d, a), (), "t0", "t1"))
    {('d.jsonl', 'evil'): 7}
    """
    wanted = {(f.source, f.trait or "") for f in result.findings if f.kind == "dataset"}
    lines: dict[tuple[str, str], int] = {}
    for finding in (f for f in ranked_sample_findings(result) if not f.baselined):
        key = (finding.source, finding.trait or "")
        if key in wanted and key not in lines:
            lines[key] = max(finding.line, 1)
    highest: dict[tuple[str, str], tuple[float, int]] = {}
    for sample in result.samples if wanted - set(lines) else ():
        for score in sample.scores:
            key = (sample.sample.source, score.trait)
            if key in wanted and key not in lines and score.delta_p > highest.get(key, (float("-inf"), 0))[0]:
                highest[key] = (score.delta_p, sample.sample.line)
    lines.update({key: max(line, 1) for key, (_, line) in highest.items()})
    return {key: lines.get(key, 1) for key in wanted}


def dataset_fingerprint(source: str, trait: str) -> str:
    """A stable identity for a dataset-level finding: sha256 of the source and the trait.

    >>> dataset_fingerprint("data/train.jsonl", "evil") == dataset_fingerprint("data/train.jsonl", "evil")
    True
    """
    return hashlib.sha256(f"{source}\x00{trait}".encode()).hexdigest()


def rule_for_trait(rules: tuple[RuleInfo, ...], trait: str) -> RuleInfo | None:
    """The first enabled rule for ``trait`` (else the first rule for it, else None)."""
    candidates = [rule for rule in rules if rule.trait == trait]
    enabled = [rule for rule in candidates if rule.enabled]
    ranked = enabled or candidates
    return ranked[0] if ranked else None


@dataclass(frozen=True)
class DatasetVerdict:
    """One dataset summary with the threshold it was held to and whether a rule flagged it."""

    summary: DatasetSummary
    rule_id: str | None
    threshold: float | None
    finding: Finding | None

    @property
    def flagged(self) -> bool:
        return self.finding is not None


def dataset_verdicts(result: ScreenResult) -> tuple[DatasetVerdict, ...]:
    """Pair each dataset summary with its dataset finding (if any), sorted by source then trait.

    >>> from datalint_persona.types import DatasetSummary
    >>> from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
    >>> model = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
    >>> settings = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", 0.05, 0.05)
    >>> s = DatasetSummary("evil", "a.jsonl", 3, 0.5, 0.1, 0.9, 1.0, 0.5)
    >>> r = ScreenResult("0", model, settings, (), (), ("a.jsonl",), (), (s,), (), (), "t0", "t1")
    >>> [(v.summary.trait, v.flagged, v.threshold) for v in dataset_verdicts(r)]
    [('evil', False, None)]
    """
    verdicts = []
    for summary in sorted(result.summaries, key=lambda s: (s.source, s.trait)):
        finding = next(
            (
                f
                for f in result.findings
                if f.kind == "dataset" and f.source == summary.source and f.trait == summary.trait
            ),
            None,
        )
        rule = rule_for_trait(result.rules, summary.trait)
        # The engine records the threshold it applied (calibrated ones depend on the dataset's size).
        threshold = summary.threshold
        if threshold is None and rule is not None:
            threshold = rule.dataset_threshold
        rule_id = rule.id if rule is not None else None
        if finding is not None:  # the finding says what was actually applied
            rule_id = finding.rule_id
            threshold = finding.threshold if finding.threshold is not None else threshold
        verdicts.append(DatasetVerdict(summary, rule_id, threshold, finding))
    return tuple(verdicts)
