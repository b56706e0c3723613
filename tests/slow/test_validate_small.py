"""A small run of experiments/validate.py on the real embedded model: the signs of the paper's claims.

8 evil samples at 0% and 100% contamination, one LoRA step each, plus one step with preventative
steering. Checks: the contaminated set has the larger dataset ΔP and the larger finetuning shift along
the evil vector, and preventative steering (+1 x v during training) makes the shift smaller.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from datalint_persona.model.loading import LoadedModel

EXPERIMENT = Path(__file__).resolve().parents[2] / "experiments" / "validate.py"


def _load_experiment() -> Any:
    spec = importlib.util.spec_from_file_location("persona_lint_validate", EXPERIMENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_small_validation_has_the_papers_signs(smollm: LoadedModel, tmp_path: Path) -> None:
    validate = _load_experiment()
    args = ["--traits", "evil", "--levels", "0", "1", "--samples", "8", "--epochs", "1", "--batch-size", "8"]
    args += ["--lr", "1e-3", "--max-len", "128", "--y-prime-tokens", "16", "--eval-questions", "4"]
    args += ["--gen-questions", "0", "--threads", "0", "--work", str(tmp_path), "--json", "", "--results", ""]
    results = validate.main(args, loaded=smollm)
    runs = {(r["level"], r["steering"]): r for r in results["traits"][0]["runs"]}
    clean, contaminated, prevented = runs[(0.0, "none")], runs[(1.0, "none")], runs[(1.0, "add")]
    assert contaminated["n_trait_samples"] == 8 and clean["n_trait_samples"] == 0
    # Screening sees the contamination before training ...
    assert contaminated["delta_p"] > clean["delta_p"] + 1.0
    # ... and training on it moves the model further along the evil vector ...
    assert contaminated["shift"] > clean["shift"]
    # ... unless the push along v comes from preventative steering during training.
    assert prevented["shift"] < contaminated["shift"]
    assert prevented["delta_p"] == contaminated["delta_p"]  # same data
