"""``--changed-since REF``: which samples were added or changed relative to a git ref.

JSONL files are compared line by line (a ``difflib`` diff of the file at REF against the working
tree, as ``git diff`` would show it); other formats record by record (a row is changed when its
content is not among the rows the file had at REF). A file that did not exist at REF is new in
full. The whole file is still screened, so dataset-level ΔP covers every sample (with y' from the
cache), but :func:`restrict_to_changes` keeps per-sample findings only for changed samples.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from datalint_persona.errors import ConfigError
from datalint_persona.paths import display_path
from datalint_persona.run_records import ScreenResult

__all__ = ["ChangedLines", "changed_lines", "restrict_to_changes"]

_GIT_TIMEOUT_S = 60


@dataclass(frozen=True)
class ChangedLines:
    """The changed lines (JSONL) or rows (other formats) of one file; ``None``: all of them."""

    source: str  # the display path, as samples and findings name the file
    lines: frozenset[int] | None


def _git(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, timeout=_GIT_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise ConfigError(
            "--changed-since needs git, which is not installed.", fix="install git or drop --changed-since."
        ) from None


def _repo_root(path: Path) -> Path:
    done = _git(["rev-parse", "--show-toplevel"], path.parent)
    if done.returncode != 0:
        raise ConfigError(
            f"--changed-since: '{path}' is not inside a git repository.",
            fix="run persona-lint inside the repository's checkout, or drop --changed-since.",
        )
    return Path(done.stdout.decode().strip())


def _check_ref(ref: str, root: Path) -> None:
    if ref.startswith("-"):  # git would read it as an option (git show --output=FILE writes a file)
        raise ConfigError(
            f"--changed-since: '{ref}' is not a git ref.",
            fix="pass a branch, tag or commit, e.g. origin/main.",
        )
    done = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root)
    if done.returncode != 0:
        raise ConfigError(
            f"--changed-since: '{ref}' is not a commit in the repository at '{root}'.",
            fix="fetch it first (e.g. git fetch origin main, and use origin/main), "
            "or check the spelling with git log --oneline.",
        )


def _old_bytes(ref: str, root: Path, path: Path) -> bytes | None:
    """The file's content at ``ref``, or None when it did not exist there."""
    relative = Path(os.path.realpath(path)).relative_to(Path(os.path.realpath(root))).as_posix()
    done = _git(["show", f"{ref}:{relative}"], root)
    return done.stdout if done.returncode == 0 else None


def _jsonl_changes(old: bytes, new: bytes) -> frozenset[int]:
    """1-based lines of ``new`` that a line diff marks as inserted or replaced.

    >>> sorted(_jsonl_changes(b"a\\nb\\nc\\n", b"a\\nB\\nc\\nd\\n"))
    [2, 4]
    """
    old_lines, new_lines = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    changed: set[int] = set()
    for tag, _, _, start, end in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            changed.update(range(start + 1, end + 1))
    return frozenset(changed)


def _record_changes(old: bytes, path: Path) -> frozenset[int]:
    """Rows of the current file whose content (prompt and response) the old file lacked."""
    from datalint_persona.dataset.loaders import iter_records
    from datalint_persona.types import Sample

    with tempfile.TemporaryDirectory(prefix="persona-lint-ref-") as folder:
        old_path = Path(folder) / f"old{path.suffix}"
        old_path.write_bytes(old)
        before: Counter[str] = Counter(
            item.content_hash
            for item in iter_records(str(old_path), skip_invalid=True)
            if isinstance(item, Sample)
        )
    changed: set[int] = set()
    for item in iter_records(str(path), skip_invalid=True):
        if not isinstance(item, Sample):
            changed.add(item.line)  # an invalid row is reported where it is
        elif before[item.content_hash] > 0:
            before[item.content_hash] -= 1
        else:
            changed.add(item.line)
    return frozenset(changed)


def changed_lines(ref: str, files: Sequence[str]) -> dict[str, ChangedLines]:
    """Per input file (keyed by its display path): what changed since ``ref``.

    Raises :class:`ConfigError` outside a git repository, for an unknown ref, or for an input
    that is not a local file (a Hugging Face dataset id has no git history here).
    """
    changes: dict[str, ChangedLines] = {}
    checked: set[Path] = set()
    for name in files:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(
                f"--changed-since: '{name}' is not a local file, so it has no git history.",
                fix="pass dataset files inside the repository, or drop --changed-since.",
            )
        root = _repo_root(path.resolve())
        if root not in checked:
            _check_ref(ref, root)
            checked.add(root)
        old = _old_bytes(ref, root, path)
        shown = display_path(path)
        if old is None:
            changes[shown] = ChangedLines(shown, None)
        elif path.suffix.lower() == ".jsonl":
            changes[shown] = ChangedLines(shown, _jsonl_changes(old, path.read_bytes()))
        else:
            changes[shown] = ChangedLines(shown, _record_changes(old, path))
    return changes


def restrict_to_changes(result: ScreenResult, changes: Mapping[str, ChangedLines], ref: str) -> ScreenResult:
    """Keep sample and invalid-record findings on changed lines only; dataset findings stay.

    Each file's changed samples are also compared with its unchanged ones
    (:func:`datalint_persona.verdicts.datasets.compare_changes`), so the file's own style is the reference;
    a flagged comparison is a dataset finding, and every comparison is listed in the settings.
    """
    from datalint_persona.verdicts.datasets import compare_changes
    from datalint_persona.verdicts.findings import change_findings

    def changed(source: str, line: int) -> bool:
        entry = changes.get(source)
        return entry is None or entry.lines is None or line in entry.lines

    rules = [rule for rule in result.rules if rule.enabled]
    comparisons = compare_changes(result.samples, rules, changed, dataset_alpha=result.settings.dataset_fpr)
    findings = tuple(f for f in result.findings if f.kind == "dataset" or changed(f.source, f.line))
    findings += tuple(change_findings(comparisons, rules))
    invalid = tuple(r for r in result.invalid if changed(r.source, r.line))
    n_changed = sum(1 for s in result.samples if changed(s.sample.source, s.sample.line))
    settings = replace(
        result.settings, changed_since=ref, changed_samples=n_changed, changed_comparisons=tuple(comparisons)
    )
    return replace(result, findings=findings, invalid=invalid, settings=settings)
