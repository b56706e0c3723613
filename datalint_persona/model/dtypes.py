"""``--dtype``: the number format the model runs in, and what ``auto`` picks on this hardware.

bfloat16 pays only where the hardware multiplies it natively: on a CPU with AMX or AVX-512 BF16
units a bf16 matrix product ran 6.8x the fp32 rate, while on a CPU without them (AVX2 only) the
same product ran at a hundredth of it, and a bf16 ``Linear`` at an eighth (benchmarks/RESULTS.md).
So ``auto`` is bfloat16 on such CPUs and on CUDA devices that support it, and float32 elsewhere.
This module imports torch only to ask about a CUDA device.
"""

from __future__ import annotations

import sys
from pathlib import Path

DTYPES = ("auto", "float32", "bfloat16")
# /proc/cpuinfo flags of x86 bf16 matrix units: AMX tiles, or AVX-512 BF16 dot products.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
_CPUINFO = Path("/proc/cpuinfo")

__all__ = ["BF16_CPU_FLAGS", "DTYPES", "cpu_has_bf16_units", "resolve_dtype"]


def cpu_has_bf16_units(cpuinfo: str | None = None) -> bool:
    """Whether the CPU's flags name bf16 matrix units (:data:`BF16_CPU_FLAGS`).

    ``cpuinfo`` is the text of ``/proc/cpuinfo`` (read here on Linux; elsewhere the answer is False).

    >>> cpu_has_bf16_units("flags\\t\\t: fpu avx2 avx512f avx512_bf16 amx_tile")
    True
    >>> cpu_has_bf16_units("flags\\t\\t: fpu sse2 avx2 fma")
    False
    """
    if cpuinfo is None:
        if not sys.platform.startswith("linux"):
            return False
        try:
            cpuinfo = _CPUINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return any(flag in value.split() for flag in BF16_CPU_FLAGS)
    return False


def resolve_dtype(choice: str, device: str) -> str:
    """``float32`` or ``bfloat16`` for ``--dtype choice`` on ``device`` (as resolved: ``cpu``,
    ``cuda:1``, ...). ``auto``: bfloat16 on a CPU with bf16 units and on a CUDA device that
    supports it, else float32.

    >>> resolve_dtype("float32", "cuda")
    'float32'
    >>> resolve_dtype("auto", "mps")
    'float32'
    """
    if choice != "auto":
        return choice
    kind = device.split(":", 1)[0]
    if kind == "cpu":
        return "bfloat16" if cpu_has_bf16_units() else "float32"
    if kind == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    return "float32"
