"""A Ray run whose workers resolved ``--dtype auto`` to different dtypes is refused."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from datalint_persona.distributed.run import _check_one_dtype
from datalint_persona.errors import PersonaLintError


def _outcome(dtype: str) -> Any:
    return SimpleNamespace(plan=SimpleNamespace(options=SimpleNamespace(dtype=dtype)))


def test_workers_in_one_dtype_pass() -> None:
    _check_one_dtype([_outcome("bfloat16"), _outcome("bfloat16")])


def test_workers_in_two_dtypes_are_refused_with_the_fix() -> None:
    with pytest.raises(PersonaLintError, match=r"different dtypes \(bfloat16, float32\)") as error:
        _check_one_dtype([_outcome("float32"), _outcome("bfloat16"), _outcome("float32")])
    assert "--dtype float32" in str(error.value.fix)
