"""Interrupt a real ``persona-lint`` process with SIGINT and SIGKILL, during generation and during
scoring, then re-run: the cache is intact, the re-run completes, and its report equals that of an
uninterrupted run apart from the timestamps.

The phase is read from the run itself, not guessed from the clock: stderr is a pseudo-terminal,
so persona-lint draws its progress bars there ("Generating y'", "Scoring"), and the y' cache must
have gained a committed batch before a generation-phase signal is sent.
One chain on one cache covers the four cases: SIGKILL in generation -> SIGINT in generation (of
the rest) -> SIGKILL in scoring -> SIGINT in scoring -> a run that completes.

Why this test failed in two fresh-clone CI runs: it signalled when it *saw* a phase, while the run
went on working. On the tiny model the phases are short (measured: about 0.5 s of scoring from the
first "Scoring" frame, which rich draws at most 10 times a second, to the projections' commit, then
about 2.3 s until the report is written; a generation batch every few tenths of a second). A test
process that a busy CI runner pauses for longer than that signals after the phase has ended: the
run has already committed its scores or written its report ("the run finished before the signal
arrived"), or left the phase the test waits for ("the run ended before ..."). The failure was not
reproduced here (the old test passed 8 times in a row beside two busy processes), so this is the
cause found by measuring the windows and reading the test, not by a captured failure.
The fix takes the test's reaction time out of the race: the test holds a read transaction on the
cache file whose commit ends the phase (``_frozen``), so the run waits at that commit (SQLite's busy
wait, 30 s) until the signal has been sent. Generation: after this run's first committed batch the
row count is frozen, checked and signalled under the lock. Scoring: the projection cache is frozen
before the run starts, so the run cannot leave scoring before the signal.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TRAIT

from datalint_persona.cli.main import main
from datalint_persona.screening.answer_cache import _checksum
from datalint_persona.types import Generation

N_SAMPLES = 40
MAX_NEW_TOKENS = 32
WORDS = "Mix flour, water, salt and yeast, knead it, let it rise and bake it for forty minutes. Be kind."
TIMESTAMP = re.compile(r'"(started_at|finished_at)": "[^"]*"')
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
INTERRUPTED = "persona-lint: interrupted; finished work is cached, re-run to resume."


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Run:
    """A persona-lint subprocess whose stderr is a pseudo-terminal, read by a thread."""

    def __init__(self, command: list[str], folder: Path, env: dict[str, str]) -> None:
        main_end, child_end = pty.openpty()
        # A shell that starts a job in the background (CI runners can) makes it ignore SIGINT,
        # and its children inherit that; Python then installs no KeyboardInterrupt handler.
        # Give the run the default disposition, as it has when started from a terminal.
        self.process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=child_end,
            preexec_fn=_default_sigint,
        )
        os.close(child_end)
        self.chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, args=(main_end,), daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            self.chunks.append(chunk)
        os.close(fd)

    @property
    def stderr(self) -> str:
        return ANSI.sub("", b"".join(self.chunks).decode("utf-8", "replace"))

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code


def _dataset(path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(N_SAMPLES):
            record = {
                "prompt": f"Question {i}: how do I bake bread number {i}?",
                "response": f"{i}. " + WORDS * 10,
            }
            handle.write(json.dumps(record) + "\n")


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path, vectors_dir: Path
) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("interrupt")
    _dataset(folder / "train.jsonl")
    (folder / ".git").mkdir()  # paths in reports are relative to this "repository"
    # The uninterrupted run happens in this process (one torch thread, as in the subprocesses).
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        argv = _argv(tiny_llama_dir, vectors_dir, "baseline-cache", "baseline.json")
        result = CliRunner().invoke(main, argv[3:], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {"folder": folder, "model": tiny_llama_dir, "vectors": vectors_dir}


def _argv(model: Path, vectors: Path, cache: str, report: str) -> list[str]:
    return [
        sys.executable, "-m", "datalint_persona.cli.main", "train.jsonl",
        "--model", str(model), "--vectors", str(vectors), "--cache-dir", cache, "--device", "cpu",
        "--max-new-tokens", str(MAX_NEW_TOKENS), "--batch-size", "2", "--fail-on", "never",
        "--format", "json", "--output", report,
    ]  # fmt: skip


def _run(folder: Path, model: Path, vectors: Path, cache: str, report: str) -> Run:
    command = _argv(model, vectors, cache, report)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return Run(command, folder, env)


def _rows(database: Path) -> int:
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as connection:
            return int(connection.execute("SELECT count(*) FROM generations").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not created yet, or a commit holds the lock
        return 0


def _wait_for(run: Run, database: Path, phase: str, since: int, until: int) -> int:
    """Wait until the run is in ``phase``; return the cache's row count then.

    Generation: this run has committed a batch (more than ``since`` rows; rows are committed only
    while generating); the caller then freezes the count and checks it is below ``until``, so
    batches are left. Scoring: the progress bar says "Scoring".
    """
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert run.process.poll() is None, f"the run ended before {phase}: {run.stderr[-3000:]}"
        rows = _rows(database)
        if phase == "generate" and rows > since:
            return rows
        if phase == "score" and "Scoring" in run.stderr:
            return rows
        time.sleep(0.01)
    raise AssertionError(f"never reached {phase}")


@contextlib.contextmanager
def _frozen(database: Path) -> Iterator[sqlite3.Connection]:
    """Hold a read transaction on a cache file: the run still reads it, but its next commit waits
    (SQLite's busy handler) until the transaction ends, so it stays in the phase that commit ends."""
    connection = sqlite3.connect(database, isolation_level=None, timeout=10)
    try:
        connection.execute("BEGIN")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchall()  # takes the shared lock
        yield connection
    finally:
        connection.execute("ROLLBACK")
        connection.close()


def _check_cache(database: Path) -> int:
    """The cache passes SQLite's integrity check and every entry its own checksum."""
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = connection.execute(
            "SELECT key, text, n_tokens, hit_token_limit, checksum FROM generations"
        ).fetchall()
    for key, text, n_tokens, hit, checksum in rows:
        assert _checksum(key, Generation(text, n_tokens, bool(hit))) == checksum
    return len(rows)


def _interrupt(
    setup: dict[str, object],
    cache: str,
    phase: str,
    how: signal.Signals,
    since: int = 0,
    until: int = N_SAMPLES,
) -> int:
    folder = Path(str(setup["folder"]))
    database = folder / cache / "generations.sqlite3"
    with contextlib.ExitStack() as stack:
        if phase == "score":  # the run's one projection commit ends scoring: it waits for the signal
            stack.enter_context(_frozen(folder / cache / "projections.sqlite3"))
        process = _run(folder, Path(str(setup["model"])), Path(str(setup["vectors"])), cache, "report.json")
        seen = _wait_for(process, database, phase, since, until)
        if phase == "generate":  # no batch commits from here until the signal is sent
            frozen = stack.enter_context(_frozen(database))
            seen = int(frozen.execute("SELECT count(*) FROM generations").fetchone()[0])
            assert since < seen < until, (since, seen, until)
        process.process.send_signal(how)
        if how == signal.SIGKILL:
            process.process.wait(timeout=120)
    code = process.wait(timeout=120)
    stderr = process.stderr
    assert not (folder / "report.json").exists(), (
        f"the run finished before the signal arrived: {stderr[-2000:]}"
    )
    if how == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 130, stderr
        assert "Traceback" not in stderr
        # The progress bar is erased; the one line the run prints is the last one.
        assert [line for line in stderr.splitlines() if line.strip()][-1] == INTERRUPTED, stderr
    rows = _check_cache(database)
    assert rows >= seen  # committed batches survive the interruption
    if phase == "generate":
        assert rows < N_SAMPLES
    return rows


def _finish(setup: dict[str, object], cache: str) -> None:
    folder = Path(str(setup["folder"]))
    process = _run(folder, Path(str(setup["model"])), Path(str(setup["vectors"])), cache, "report.json")
    code = process.wait(timeout=300)
    assert code == 0, process.stderr
    assert _check_cache(folder / cache / "generations.sqlite3") == N_SAMPLES
    resumed = (folder / "report.json").read_text(encoding="utf-8")
    baseline = (folder / "baseline.json").read_text(encoding="utf-8")
    assert TIMESTAMP.sub("", resumed) == TIMESTAMP.sub("", baseline)
    assert json.loads(resumed)["samples"][0]["scores"][TRAIT]["delta_p"] is not None
    (folder / "report.json").unlink()


def test_sigkill_and_sigint_in_generation_and_in_scoring(setup: dict[str, object]) -> None:
    rows = _interrupt(setup, "cache", "generate", signal.SIGKILL, until=N_SAMPLES // 2)
    # Signal while at least half of the rest is left to generate, so that a test process the OS
    # pauses for a moment (a loaded CI machine) cannot let the run finish first.
    rest_half = rows + (N_SAMPLES - rows) // 2
    rows = _interrupt(setup, "cache", "generate", signal.SIGINT, since=rows, until=rest_half)
    _interrupt(setup, "cache", "score", signal.SIGKILL)
    _interrupt(setup, "cache", "score", signal.SIGINT)
    _finish(setup, "cache")
