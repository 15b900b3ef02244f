# Two entry points on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck figures bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/evtrade clear examples/small.json
	$(BIN)/evtrade demo
	$(BIN)/evtrade reproduce eta --out out/eta

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

test: lint typecheck
	$(BIN)/pytest -q -m "not slow"

figures: $(STAMP)
	$(BIN)/evtrade reproduce eta --out docs/figures/eta

bench: $(STAMP)
	$(BIN)/evtrade bench
	$(BIN)/python benchmarks/scaling.py --out docs/figures/performance

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
