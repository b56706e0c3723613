"""Turn what a user names on the command line into sources the readers open.

- A file with a supported extension (``.jsonl``, ``.json``, ``.csv``, ``.parquet``) is one source.
- A folder written by ``datasets``' ``save_to_disk`` is one source.
- Any other folder stands for every dataset file under it, recursively and sorted, each one a
  source of its own named as if it had been given alone (``data/a/x.jsonl``). Hidden files and
  folders (``.git``, ``.persona-lint-cache``) and ``node_modules`` are skipped, and so is a
  ``.json`` file that is not a JSON array (``package.json``, a baseline or a config file: a JSON
  dataset is an array of records). A folder without any dataset file is an error.
- ``-`` is JSONL on standard input, named ``<stdin>`` in reports and errors. It is read once into
  a temporary file (removed at exit), so it can be checked, hashed and read again like a file.
- A name that does not exist is a Hugging Face dataset id only if it has the form ``owner/name``,
  no data extension, and there is no local folder ``owner``. Any other missing name is a mistyped
  path: an error at once, with the closest file names in its folder, and no network access.
"""

from __future__ import annotations

import atexit
import contextlib
import difflib
import os
import re
import shutil
import sys
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from datalint_persona.dataset.formats import Located
from datalint_persona.errors import InputError
from datalint_persona.paths import display_path

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
SUPPORTED_SOURCES = (
    "a .jsonl, .json, .csv or .parquet file, a folder of them, a directory written by datasets' "
    "save_to_disk, - for JSONL on standard input, or a Hugging Face dataset id such as owner/name"
)
STDIN = "-"
STDIN_NAME = "<stdin>"
SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__"})
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# Each standard input stream is copied once; the copy lives until the process exits.
_STDIN_COPIES: weakref.WeakKeyDictionary[TextIO, Path] = weakref.WeakKeyDictionary()


def expand_sources(sources: Sequence[str] | str) -> list[str]:
    """The sources to read: each plain folder replaced by its dataset files, each file once.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     for name in ("b.csv", "a/x.jsonl", "notes.txt", ".hidden/y.jsonl"):
    ...         path = pathlib.Path(folder, name)
    ...         path.parent.mkdir(parents=True, exist_ok=True)
    ...         _ = path.write_text("")
    ...     [pathlib.Path(p).relative_to(folder).as_posix() for p in expand_sources([folder])]
    ['a/x.jsonl', 'b.csv']
    """
    if isinstance(sources, str):  # a bare string is a Sequence[str] of characters
        sources = [sources]
    expanded: dict[str, str] = {}  # normalised path -> the first spelling of it
    for source in sources:
        path = Path(source)
        files = (
            _dataset_files(path)
            if source != STDIN and path.is_dir() and not is_saved_dataset(path)
            else [source]
        )
        for name in files:
            expanded.setdefault(os.path.normpath(name), name)
    return list(expanded.values())


def check_sources(sources: Sequence[str] | str) -> list[str]:
    """:func:`expand_sources`, with every source located at once: a mistyped path fails here,
    before any model or network is touched."""
    expanded = expand_sources(sources)
    for source in expanded:
        locate(source)
    return expanded


def locate_all(sources: Sequence[str] | str) -> list[Located]:
    """Every source of :func:`expand_sources`, located (each check runs before any is read)."""
    return [locate(source) for source in expand_sources(sources)]


def is_saved_dataset(folder: Path) -> bool:
    """Whether ``folder`` was written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()


def _dataset_files(folder: Path) -> list[str]:
    found = _walk(folder, set())
    if not found:
        raise InputError(
            f"no dataset files found in this folder (looked for {', '.join(SUPPORTED_SUFFIXES)} "
            "in it and its subfolders)",
            path=display_path(folder),
            fix="put the dataset files in it, or name the files themselves",
        )
    return found


def _walk(folder: Path, seen: set[Path]) -> list[str]:
    """Dataset files and saved datasets under ``folder``, sorted by name at each level."""
    real = folder.resolve()
    if real in seen:  # a symlink back to a folder being walked
        return []
    seen.add(real)
    try:
        entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    except OSError as error:
        raise InputError(
            f"can't list the folder ({error.strerror or error})",
            path=display_path(folder),
            fix="give persona-lint read access to the folder, or name the files themselves",
        ) from None
    found: list[str] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if entry.name not in SKIPPED_FOLDERS:
                found.extend([str(entry)] if is_saved_dataset(entry) else _walk(entry, seen))
        elif entry.is_file() and entry.suffix.lower() in SUPPORTED_SUFFIXES and not _json_object(entry):
            found.append(str(entry))
    return found


def _json_object(path: Path) -> bool:
    """Whether ``path`` is a ``.json`` file whose top-level value is not an array (so not a dataset),
    judged by its first character after whitespace and a byte-order mark."""
    if path.suffix.lower() != ".json":
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False  # reading it later reports the problem with the file's name
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return bool(text) and not text.startswith(b"[")


def locate(source: str) -> Located:
    """Find what kind of source ``source`` is; a missing file or unsupported type raises here."""
    if source == STDIN:
        return Located(".jsonl", stdin_copy(), STDIN_NAME)
    path = Path(source)
    if path.is_dir():
        return Located("disk", path, display_path(path))
    suffix = path.suffix.lower()
    if path.exists():
        if suffix not in SUPPORTED_SUFFIXES:
            raise InputError(
                f"unsupported file type '{suffix or '(no extension)'}'",
                path=display_path(path),
                fix=f"give {SUPPORTED_SOURCES}",
            )
        return Located(suffix, path, display_path(path))
    if looks_like_hub_id(source):
        return Located("hub", path, source)
    raise _not_found(source)


def looks_like_hub_id(source: str) -> bool:
    """Whether a name that is not a local path is read as a Hugging Face dataset id.

    >>> looks_like_hub_id("someone/tiny-chat"), looks_like_hub_id("someone/chat.jsonl")
    (True, False)
    >>> looks_like_hub_id("./someone/chat"), looks_like_hub_id("a/b/c"), looks_like_hub_id("chat")
    (False, False, False)
    """
    owner = source.partition("/")[0]
    return (
        _HUB_ID.fullmatch(source) is not None
        and Path(source).suffix.lower() not in SUPPORTED_SUFFIXES
        and not Path(owner).exists()  # data/trian is a typo of a path when the folder data exists
    )


def _not_found(source: str) -> InputError:
    path = Path(source)
    folder = path.parent

    def typed(where: Path) -> str:  # as the user can type it, never an absolute path
        return display_path(where) if where.is_absolute() else where.as_posix()

    problem = "file not found"
    if not folder.is_dir():
        problem += f" (the folder '{typed(folder)}' does not exist either)"
    else:
        close = close_names(path.name, [entry.name for entry in folder.iterdir()])
        if close:
            problem += f". Did you mean {' or '.join(repr(typed(folder / name)) for name in close)}?"
    fix = f"check the path and the current directory; a source is {SUPPORTED_SOURCES}"
    owner = source.partition("/")[0]
    if _HUB_ID.fullmatch(source) and Path(owner).is_dir():
        fix += f" (a name owner/name is a hub id only when there is no local folder '{owner}')"
    return InputError(problem, path=display_path(path), fix=fix)


def close_names(name: str, candidates: Sequence[str], limit: int = 3) -> list[str]:
    """Up to ``limit`` of ``candidates`` most like ``name``, comparing names with and without
    their extension (so ``trian`` finds ``train.jsonl``); hidden files are left out.

    >>> close_names("trian", ["train.jsonl", "test.jsonl", "README.md"])
    ['train.jsonl']
    """

    def likeness(candidate: str) -> float:
        return max(
            difflib.SequenceMatcher(None, typed, known).ratio()
            for typed in {name, Path(name).stem}
            for known in {candidate, Path(candidate).stem}
        )

    scored = sorted(
        ((likeness(candidate), candidate) for candidate in candidates if not candidate.startswith(".")),
        key=lambda pair: (-pair[0], pair[1]),
    )
    return [candidate for score, candidate in scored if score >= 0.6][:limit]


def stdin_copy() -> Path:
    """A temporary copy of standard input (read once per stream), so ``-`` reads like a file."""
    stream = sys.stdin
    if stream is None or stream.closed:
        raise InputError(
            "standard input is closed",
            path=STDIN_NAME,
            fix="pipe the JSONL in: cat train.jsonl | persona-lint -",
        )
    copy = _STDIN_COPIES.get(stream)
    if copy is not None:
        return copy
    if stream.isatty():
        raise InputError(
            "'-' reads JSONL from standard input, but standard input is a terminal",
            path=STDIN_NAME,
            fix="pipe the data in (cat train.jsonl | persona-lint -), or name the file",
        )
    handle, name = tempfile.mkstemp(prefix="persona-lint-stdin-", suffix=".jsonl")
    atexit.register(_remove, name)
    with os.fdopen(handle, "wb") as spool:
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            shutil.copyfileobj(buffer, spool)
        else:  # a text-only stream (io.StringIO)
            spool.write(stream.read().encode("utf-8"))
    copy = Path(name)
    _STDIN_COPIES[stream] = copy
    return copy


def _remove(name: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(name)
