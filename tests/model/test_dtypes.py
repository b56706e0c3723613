"""--dtype: what auto picks from the CPU's flags, and a bfloat16 run end to end (its own cache
keys, the dtype in the report, projections that track float32's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from screening.test_engine import RECORDS, write_jsonl

from datalint_persona.errors import ConfigError
from datalint_persona.model.dtypes import DTYPES, cpu_has_bf16_units, resolve_dtype
from datalint_persona.reporters.json_report import render_json
from datalint_persona.screening.engine import screen
from datalint_persona.settings import ScreenOptions, config_schema

_AMX = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
_AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\nbugs\t\t: avx512_bf16_is_not_a_flag_here\n"


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [(_AMX, True), (_AVX2, False), ("flags : avx512_bf16", True), ("flags : amx_bf16", True), ("", False)],
)
def test_bf16_units_are_read_from_the_flags_line(cpuinfo: str, expected: bool) -> None:
    assert cpu_has_bf16_units(cpuinfo) is expected


def test_auto_on_this_cpu_follows_its_flags() -> None:
    # An independent reading of this machine's flags: every "flags" line of /proc/cpuinfo.
    path = Path("/proc/cpuinfo")
    flags = {f for line in path.read_text().splitlines() if line.startswith("flags") for f in line.split()}
    expected = "bfloat16" if flags & {"amx_bf16", "avx512_bf16"} else "float32"
    assert resolve_dtype("auto", "cpu") == expected


def test_an_explicit_dtype_is_kept_and_other_devices_get_float32() -> None:
    assert [resolve_dtype(d, "cpu") for d in ("float32", "bfloat16")] == ["float32", "bfloat16"]
    assert resolve_dtype("auto", "mps") == "float32"


def test_the_config_schema_offers_the_same_choices() -> None:
    assert tuple(config_schema()["properties"]["dtype"]["enum"]) == DTYPES


def test_a_mistyped_dtype_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown value 'bf16'.*bfloat16"):
        ScreenOptions(dtype="bf16")


def test_a_bfloat16_run_records_its_dtype_keys_its_caches_apart_and_tracks_float32(
    tiny_llama_dir: Path, vectors_dir: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", RECORDS)
    common = {
        "model": str(tiny_llama_dir),
        "vectors": str(vectors_dir),
        "cache_dir": str(tmp_path / "cache"),
        "device": "cpu",
        "batch_size": 4,
        "max_new_tokens": 8,
    }
    full = screen([str(data)], ScreenOptions(**common, dtype="float32"))
    half = screen([str(data)], ScreenOptions(**common, dtype="bfloat16"))
    assert json.loads(render_json(full))["settings"]["dtype"] == "float32"
    assert json.loads(render_json(half))["settings"]["dtype"] == "bfloat16"
    # The same cache folder: the bfloat16 run reused none of the float32 run's y' or projections.
    assert full.cache_stats["misses"] > 0
    assert (half.cache_stats["hits"], half.cache_stats["projections_reused"]) == (0, 0)
    # The projection of y (the same text in both runs) tracks float32's closely.
    y_full = np.array([s.scores[0].projection_y for s in full.samples])
    y_half = np.array([s.scores[0].projection_y for s in half.samples])
    assert stats.pearsonr(y_full, y_half).statistic > 0.99
    assert not np.array_equal(y_full, y_half)  # really computed in another format
