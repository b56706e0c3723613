"""The per-user cache folder, shared by every environment of one user (a project's virtualenv, the
one pre-commit builds for the hook, CI's).

``$PERSONA_LINT_HOME`` when set, else ``$XDG_CACHE_HOME/persona-lint``, else
``~/.cache/persona-lint`` (the XDG layout that platformdirs uses on Linux).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

HOME_VARIABLE = "PERSONA_LINT_HOME"


def user_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where persona-lint keeps per-user files such as the embedded model's GGUF copy.

    An empty variable counts as unset, as the XDG specification says.

    >>> user_cache_dir({"PERSONA_LINT_HOME": "/srv/pl", "XDG_CACHE_HOME": "/x"}).as_posix()
    '/srv/pl'
    >>> user_cache_dir({"XDG_CACHE_HOME": "/x"}).as_posix()
    '/x/persona-lint'
    >>> user_cache_dir({"HOME": "/home/a"}).as_posix()
    '/home/a/.cache/persona-lint'
    """
    home = environ.get(HOME_VARIABLE, "")
    if home:
        return Path(home).expanduser()
    xdg = environ.get("XDG_CACHE_HOME", "")
    if xdg:
        return Path(xdg).expanduser() / "persona-lint"
    user_home = environ.get("HOME", "")
    base = Path(user_home) if user_home else Path.home()
    return base / ".cache" / "persona-lint"
