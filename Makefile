# Transfer Ledger — `make run` serves the ledger, `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA_DIR ?= ledger-data
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test lint bench demo verify screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

## run: create .venv, install, initialize the embedded database once, serve on $(HOST):$(PORT)
run: $(VENV)/.installed
	$(BIN)/transfer-ledger init --data-dir $(DATA_DIR)
	$(BIN)/transfer-ledger serve --data-dir $(DATA_DIR) --host $(HOST) --port $(PORT)

## test: create .venv, install, run the whole suite
test: $(VENV)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff over the tree, mypy --strict over domain/ and ledger/tlog/ (pyproject.toml)
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

## bench: side-by-side ratios (BENCH_EVENTS=... for a quicker run)
bench: $(VENV)/.installed
	$(BIN)/python -m bench

## demo: record the art. 36 §3 scenario into $(DATA_DIR) and narrate it
demo: $(VENV)/.installed
	$(BIN)/transfer-ledger init --data-dir $(DATA_DIR)
	$(BIN)/transfer-ledger demo --data-dir $(DATA_DIR)

## screenshots: run the console's browser tests, writing their screenshots to docs/console (needs chromium)
screenshots: $(VENV)/.installed
	TRANSFER_LEDGER_CONSOLE_SCREENSHOTS=docs/console TRANSFER_LEDGER_REQUIRE_BROWSER=1 $(BIN)/python -m pytest tests/console

verify: $(VENV)/.installed
	$(BIN)/transfer-ledger verify --data-dir $(DATA_DIR)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
