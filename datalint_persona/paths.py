"""How file paths appear in reports: short, relative, and the same on every machine.

Reports, baselines and SARIF files are shared between people and CI runners, so they must
never contain an absolute path such as ``/home/alice/project/data/train.jsonl``.
"""

from __future__ import annotations

import os
from pathlib import Path


def find_repo_root(path: str | os.PathLike[str]) -> Path | None:
    """The nearest directory at or above ``path`` that holds a ``.git`` entry, or None.

    ``.git`` may be a directory (a normal clone) or a file (a worktree or submodule).
    No subprocess is run, so this works without git installed.

    >>> find_repo_root("/") is None or isinstance(find_repo_root("/"), Path)
    True
    """
    start = Path(os.path.abspath(path))
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


def _relative_posix(path: Path, base: Path) -> str | None:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return None


def display_path(path: str | os.PathLike[str]) -> str:
    """The path as reports show it, never absolute and always with ``/`` separators.

    Relative to the git repository that contains the file; failing that, relative to the
    current directory when the file lies inside it; failing that, just the file name.

    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as repo:
    ...     os.mkdir(os.path.join(repo, ".git"))
    ...     display_path(os.path.join(repo, "data", "train.jsonl"))
    'data/train.jsonl'
    """
    absolute = Path(os.path.abspath(path))
    # Try the path as given and with symlinks resolved: a repo or cwd reached through a
    # symlink (macOS /tmp -> /private/tmp) should still give a relative path.
    candidates = [absolute]
    resolved = absolute.resolve()
    if resolved != absolute:
        candidates.append(resolved)

    for candidate in candidates:
        root = find_repo_root(candidate)
        if root is not None:
            relative = _relative_posix(candidate, root)
            if relative is not None:
                return relative

    cwd = Path.cwd()
    for candidate in candidates:
        for base in (cwd, cwd.resolve()):
            relative = _relative_posix(candidate, base)
            if relative is not None:
                return relative

    return absolute.name
