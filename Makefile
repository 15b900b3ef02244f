# Two entry points on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# anvil, the local Ethereum node the ledger tests also run on, from the npm registry
ANVIL_VERSION := 1.7.1
ANVIL := .tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil

.PHONY: demo serve test fuzz lint typecheck figures bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Debian's chromium for the browser tests (Playwright drives it; it never downloads a browser)
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

$(ANVIL):
	npm install --no-save --no-audit --no-fund --prefix .tools @foundry-rs/anvil-linux-amd64@$(ANVIL_VERSION)

# Development: the faucet lets each vehicle mint itself 1,000 tokens (off by default: docs/security.md)
serve: $(STAMP)
	EVTRADE_FAUCET_TOKENS=$${EVTRADE_FAUCET_TOKENS:-1000} $(BIN)/evtrade serve --data-dir out/demo

demo: $(STAMP)
	$(BIN)/evtrade clear examples/small.json
	$(BIN)/evtrade demo
	$(BIN)/evtrade reproduce eta --out out/eta

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

test: lint typecheck $(ANVIL) $(CHROMIUM)
	$(BIN)/pytest -q -m "not slow" --durations=15

# Fuzzers at full length (schemathesis against a live service, hypothesis over market files).
# `make test` runs the same tests (marker `fuzz`) with a short budget.
fuzz: $(STAMP)
	EVTRADE_FUZZ=long $(BIN)/pytest -q -m fuzz -p no:cacheprovider

figures: $(STAMP)
	$(BIN)/evtrade reproduce eta --out docs/figures/eta

bench: $(STAMP) $(ANVIL)
	$(BIN)/evtrade bench
	$(BIN)/python benchmarks/settlement.py
	$(BIN)/python benchmarks/scaling.py --out docs/figures/performance

clean:
	rm -rf $(VENV) .tools out .pytest_cache .mypy_cache .ruff_cache
