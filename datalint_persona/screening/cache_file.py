"""The SQLite file under each on-disk cache (y' and projections), and the one recovery path both share.

A cache never changes a run's results, only how much it recomputes:

- a bad entry (a value of the wrong type, a failed checksum) is dropped by its cache and recomputed,
  and the cache warns (see :mod:`datalint_persona.screening.answer_cache` and
  :mod:`datalint_persona.screening.projection_cache`);
- a bad file (no longer SQLite, or pages damaged behind an intact header) is moved aside under a
  ``.corrupt`` name, with its journal, and a new cache is started, with a warning;
- a file that can't be used now (locked by another process for longer than ``LOCK_TIMEOUT_S``, a
  read-only folder, a full disk) is left alone: the run goes on without writing to it, or without
  it, with a warning.

SQLite's transactions make every write atomic: a run killed mid-write leaves the last committed
state, which the next connection restores from the journal.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

LOCK_TIMEOUT_S = 30.0  # how long a read or write waits for another process's lock
# SQLite's primary result codes (https://sqlite.org/rescode.html) that mean the file itself is bad.
_DAMAGED = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_LOCKED = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_COMPANIONS = ("-journal", "-wal", "-shm")


@dataclass
class CacheStats:
    """What a cache did over a run, counted the same way by both caches: entries looked up and
    found, looked up and not found, found but failing their checksum (counted as misses too), and
    written."""

    hits: int = 0
    misses: int = 0
    corrupted: int = 0
    written: int = 0


class CacheFile:
    """One SQLite cache file ``folder/name`` with ``schema``; ``warnings`` say what went wrong.

    ``read`` and ``write`` run a function on the connection and turn every SQLite failure into
    the recovery above: ``read`` then returns ``None`` (the caller treats it as all misses) and
    ``write`` returns False. ``what`` names the cache in warnings ("y' cache") and
    ``consequence`` says what a lost file costs ("every y' is generated again").

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> schema = "CREATE TABLE IF NOT EXISTS t (v INTEGER)"
    >>> cache = CacheFile(folder, "t.sqlite3", schema, what="test cache", consequence="it is refilled")
    >>> cache.write(lambda c: c.execute("INSERT INTO t VALUES (1)"))
    True
    >>> cache.read(lambda c: c.execute("SELECT v FROM t").fetchall())
    [(1,)]
    >>> cache.close()
    """

    def __init__(self, folder: Path, name: str, schema: str, *, what: str, consequence: str) -> None:
        self.folder = folder
        self.path = folder / name
        self.schema = schema
        self.what = what
        self.consequence = consequence
        self.warnings: list[str] = []
        self.writable = True
        self._connection: sqlite3.Connection | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            self._off(f"can't create its folder {folder} ({error})")
            return
        if _writable(folder):
            self._connect()
        elif self.path.is_file():
            self.warnings.append(
                f"the {what} {name} is in a folder that can't be written ({folder}); this run reads "
                "it but stores nothing new in it."
            )
            self.writable = False
            self._reopen_for_reading()
        else:
            self._off(f"can't be created: its folder {folder} can't be written")

    @property
    def is_open(self) -> bool:
        return self._connection is not None

    def read(self, work: Callable[[sqlite3.Connection], T]) -> T | None:
        if self._connection is None:
            return None
        try:
            return work(self._connection)
        except sqlite3.DatabaseError as error:
            self._recover(error, writing=False)
            return None

    def write(self, work: Callable[[sqlite3.Connection], object]) -> bool:
        """Run ``work`` in one transaction: all of it is committed, or none."""
        if self._connection is None or not self.writable:
            return False
        try:
            with self._connection:
                work(self._connection)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
            raise  # a bad entry is a bug in the caller, not damage to the file
        except sqlite3.DatabaseError as error:
            self._recover(error, writing=True)
            return False
        return True

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> None:
        try:
            self._connection = _open(self.path, self.schema)
        except sqlite3.DatabaseError as error:
            self._recover(error, writing=False)

    def _recover(self, error: sqlite3.DatabaseError, *, writing: bool) -> None:
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF
        self.close()
        if code in _LOCKED:
            self._off(
                f"is locked by another process ({error})",
                fix="let the other run finish, or give this one another --cache-dir.",
            )
        elif code in _DAMAGED or not isinstance(error, sqlite3.OperationalError):
            self._move_aside(error)
        elif writing:  # a read-only folder, a full disk: what is in the file is still good
            self.warnings.append(
                f"the {self.what} {self.path.name} can't be written ({error}); this run reads it but "
                "stores nothing new in it."
            )
            self.writable = False
            self._reopen_for_reading()
        else:
            self._off(f"can't be opened ({error})")

    def _move_aside(self, error: sqlite3.DatabaseError) -> None:
        if not self.path.is_file():
            self._off(f"can't be opened ({error})")
            return
        aside = _free_name(self.path.with_name(self.path.name + ".corrupt"))
        try:
            for suffix in _COMPANIONS:  # a journal left beside it belongs to the damaged file
                companion = self.path.with_name(self.path.name + suffix)
                if companion.exists():
                    companion.rename(aside.with_name(aside.name + suffix))
            self.path.rename(aside)
        except OSError as move_error:
            self._off(f"is damaged ({error}) and can't be moved aside ({move_error})")
            return
        self.warnings.append(
            f"the {self.what} {self.path.name} was unreadable ({error}); it was moved to {aside.name} "
            f"and {self.consequence}."
        )
        try:
            self._connection = _open(self.path, self.schema)
        except sqlite3.DatabaseError as again:
            self._off(f"can't be started again ({again})")

    def _reopen_for_reading(self) -> None:
        try:
            connection = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=LOCK_TIMEOUT_S)
            connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.DatabaseError as error:
            self._off(f"can't be read ({error})")
            return
        self._connection = connection

    def _off(self, problem: str, *, fix: str = "pass a writable --cache-dir, or --no-cache.") -> None:
        self.close()
        self.warnings.append(
            f"the {self.what} {self.path.name} {problem}; this run goes on without it, and "
            f"{self.consequence}. Fix: {fix}"
        )


def _open(database: Path, schema: str) -> sqlite3.Connection:
    connection = sqlite3.connect(database, timeout=LOCK_TIMEOUT_S)
    try:
        connection.execute(schema)
        connection.commit()
    except sqlite3.Error:
        connection.close()
        raise
    return connection


def _writable(folder: Path) -> bool:
    """Whether an entry can be created in ``folder`` (SQLite needs that for its journal); tried
    with a probe folder, not inferred from permission bits, which say nothing for root or on a
    read-only mount (and not with a file, so that a run opens no file it does not need)."""
    probe = folder / f".write-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        probe.mkdir()
    except OSError:
        return False
    probe.rmdir()
    return True


def _free_name(path: Path) -> Path:
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


class CacheTable:
    """What every cache has: its SQLite file ``name`` in ``directory`` (``None``: the cache is
    off, and everything misses), the warnings of a run, and ``close``.

    ``what`` names the cache in its warnings, and ``consequence`` says what a file that can't be
    used costs (see :class:`CacheFile`).
    """

    def __init__(
        self, directory: str | Path | None, name: str, schema: str, *, what: str, consequence: str
    ) -> None:
        self._file: CacheFile | None = None
        self._warnings: list[str] = []
        if directory is not None:
            self._file = CacheFile(Path(directory), name, schema, what=what, consequence=consequence)

    @property
    def warnings(self) -> list[str]:
        return [*(self._file.warnings if self._file else []), *self._warnings]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
