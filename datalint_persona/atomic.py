"""Atomic file writes: a temp file in the target's folder, fsynced, then renamed over the target.

A reader never sees half a file, and a crash leaves the old file as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def new_file_mode(target: Path) -> int:
    """Keep an existing file's permissions; otherwise the usual 0o666 less the umask.

    mkstemp creates 0o600 files, which would hide a CI artifact or a shipped vector from other users.
    """
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically, creating the folder if needed.

    With ``overwrite=False`` an existing file is never replaced: the temp file is hard-linked into
    place (which fails if the name exists) and :class:`FileExistsError` is raised.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a" / "x.txt"
    >>> atomic_write_bytes(target, b"hi"); target.read_bytes()
    b'hi'
    >>> atomic_write_bytes(target, b"new", overwrite=False)
    Traceback (most recent call last):
    FileExistsError: ...
    """
    with atomic_writer(path, overwrite=overwrite) as temp:
        temp.write(data)


@contextmanager
def atomic_writer(path: Path, *, overwrite: bool = True) -> Iterator[IO[bytes]]:
    """A binary handle whose bytes become ``path`` atomically when the ``with`` block ends.

    Write a large file piece by piece without holding it whole. If the block raises, the temp
    file is deleted and ``path`` is left as it was. ``overwrite`` is as for :func:`atomic_write_bytes`.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_writer(target) as handle:
    ...     _ = handle.write(b"a"); _ = handle.write(b"b")
    >>> target.read_bytes()
    b'ab'
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as temp:
            yield temp
            temp.flush()
            os.fsync(temp.fileno())
        os.chmod(temp_name, new_file_mode(path))
        if overwrite:
            os.replace(temp_name, path)
        else:
            _link_exclusively(temp_name, path)
    finally:
        Path(temp_name).unlink(missing_ok=True)


def _link_exclusively(temp_name: str, path: Path) -> None:
    try:
        os.link(temp_name, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if path.exists():
            raise FileExistsError(str(path)) from None
        os.replace(temp_name, path)
