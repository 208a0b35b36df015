# One command sets up and runs the demo (`make demo`), one sets up and runs the tests
# (`make test`). Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: setup browser demo test test-slow lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch and torchvision together, at the releases this project pins.
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	bash scripts/demo.sh $(DEMO_OUT)

# Debian's chromium for the report's browser tests, installed when missing (they skip without).
browser:
	bash scripts/ensure_chromium.sh

test: setup browser
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache

bench: setup
	$(BIN)/python benchmarks/bench_prepare.py
	$(BIN)/python benchmarks/bench_predict.py
	$(BIN)/python benchmarks/bench_fast_predict.py --workdir bench-fast-predict
	$(BIN)/python benchmarks/bench_survey.py --workdir bench-survey
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_realdata.py
	# the attribution benchmarks need `make demo` first (checkpoint and predictions in demo-out/)
	$(BIN)/python benchmarks/bench_ig.py
	$(BIN)/python benchmarks/bench_methods.py
	$(BIN)/python benchmarks/bench_occlusion.py
	$(BIN)/python benchmarks/bench_shap.py --rank 11
	$(BIN)/python benchmarks/bench_audit.py --workdir bench-audit
	$(BIN)/python benchmarks/bench_concepts.py --workdir bench-audit
	$(BIN)/python benchmarks/bench_relevance.py --workdir bench-relevance
