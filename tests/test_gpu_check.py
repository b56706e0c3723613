"""benchmarks/gpu_check.py --dry-run: the GPU check's code paths on a tiny config, on the CPU."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_check", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_dry_run_measures_every_section_and_the_paths_agree(tmp_path: Path) -> None:
    script = _script()
    output = tmp_path / "GPU-RESULTS.md"
    assert script.main(["--dry-run", "--output", str(output)]) == 0
    text = output.read_text(encoding="utf-8")
    plan = script.DRY_PLAN
    # Each batch size generated 2 batches, every y' to its budget (the zeroed LM-head rows).
    for batch in plan.batch_sizes:
        prompts = 2 * batch
        row = rf"\| {batch} \| {prompts} \| {prompts * plan.max_new_tokens} \| yes \|"
        assert re.search(row, text), row
    assert re.search(rf"\n\| {plan.score_pairs} \| \d+ \| [0-9.]+ \| \d+ \|", text)
    assert re.search(r"\| hooks \| 0 \| 0\.00e\+00 \| yes \| yes \|", text)
    assert re.search(r"\| prefix KV \| [1-9]\d* \| [0-9.e+-]+ \| n/a \| yes \|", text)
    assert "Qwen2.5-7B" not in text and "tiny Qwen2 (dry run)" in text


def test_the_gpu_config_is_qwen25_7b_shaped() -> None:
    config = _script().QWEN25_7B
    shape = (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "intermediate_size",
    )
    assert [config[k] for k in shape] == [3584, 28, 28, 4, 18944]
    assert config["vocab_size"] == 152064
