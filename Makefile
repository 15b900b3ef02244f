# Two entry points on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# anvil, the local Ethereum node the ledger tests also run on, from the npm registry
ANVIL_VERSION := 1.7.1
ANVIL := .tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
# axe-core, the accessibility checker the browser tests inject into every page (never a CDN)
AXE_VERSION := 4.14.1
AXE := .tools/axe/node_modules/axe-core/axe.min.js
# The web app's front-end libraries, from the npm registry at build time (never a CDN at run
# time): copied into the package's static/vendor/ (generated, not committed; served offline).
UPLOT_VERSION := 1.6.32
LEAFLET_VERSION := 1.9.4
SWAGGER_UI_VERSION := 5.32.0
WEB := .tools/web/node_modules
VENDOR := src/evtrade/service/static/vendor
VENDORED := $(VENDOR)/.versions

.PHONY: demo serve test test-slow fuzz lint typecheck figures bench clean vendor axe

$(STAMP): pyproject.toml | $(VENDORED)
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

# A prefix of its own, as the vendored libraries have: another `npm install --no-save` prunes.
$(AXE):
	npm install --no-save --no-audit --no-fund --prefix .tools/axe axe-core@$(AXE_VERSION)

axe: $(AXE)

# A prefix of their own: a later `npm install --no-save` would prune the anvil package.
$(VENDORED): Makefile
	npm install --no-save --no-audit --no-fund --prefix .tools/web uplot@$(UPLOT_VERSION) \
		leaflet@$(LEAFLET_VERSION) swagger-ui-dist@$(SWAGGER_UI_VERSION)
	mkdir -p $(VENDOR)
	cp $(WEB)/uplot/dist/uPlot.iife.min.js $(WEB)/uplot/dist/uPlot.min.css $(VENDOR)/
	cp $(WEB)/uplot/LICENSE $(VENDOR)/LICENSE.uplot
	cp $(WEB)/leaflet/dist/leaflet.js $(WEB)/leaflet/dist/leaflet.css $(VENDOR)/
	cp $(WEB)/leaflet/LICENSE $(VENDOR)/LICENSE.leaflet
	cp $(WEB)/swagger-ui-dist/swagger-ui-bundle.js $(WEB)/swagger-ui-dist/swagger-ui.css $(VENDOR)/
	cp $(WEB)/swagger-ui-dist/LICENSE $(VENDOR)/LICENSE.swagger-ui
	echo "uplot $(UPLOT_VERSION) leaflet $(LEAFLET_VERSION) swagger-ui-dist $(SWAGGER_UI_VERSION)" > $@

vendor: $(VENDORED)

# Development: the faucet lets each vehicle mint itself 1,000 tokens (off by default: docs/security.md)
serve: $(STAMP) vendor
	EVTRADE_FAUCET_TOKENS=$${EVTRADE_FAUCET_TOKENS:-1000} $(BIN)/evtrade serve --data-dir out/demo

# The demo's chain, with vehicles that have wallets, in out/demo: `make serve` opens the web app
# on it; `evtrade demo` runs last, so its closing lines (vehicles, password, URL) end the output.
demo: $(STAMP) vendor
	$(BIN)/evtrade clear examples/small.json
	$(BIN)/evtrade reproduce eta --out out/eta
	$(BIN)/evtrade demo --data-dir out/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# src strictly; tests with the relaxations of [tool.mypy] in pyproject.toml (unannotated tests).
typecheck: $(STAMP)
	$(BIN)/mypy --strict src
	$(BIN)/mypy tests

# Two workers, each file on one worker (its fixtures start once): most tests wait on a service,
# a chain or a browser, so two files at once fit the 2-core machine.
test: lint typecheck vendor $(ANVIL) $(AXE) $(CHROMIUM)
	$(BIN)/pytest -q -m "not slow" -n 2 --dist loadfile --durations=15

# The tests marked `slow`, which `make test` leaves out: long experiment runs, and variants of what
# a cheaper test in `make test` already proves (each marker says which). CI runs `make test` only.
test-slow: $(STAMP) vendor $(ANVIL) $(AXE) $(CHROMIUM)
	$(BIN)/pytest -q -m slow --durations=15

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
	rm -rf $(VENV) .tools $(VENDOR) out .pytest_cache .mypy_cache .ruff_cache
