# trailwarden: every target installs what it needs first (make setup), so each works from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast lint typecheck bench reliability clean up down

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

run: setup
	$(BIN)/trailwarden run

test: setup lint typecheck
	$(BIN)/trailwarden rules test -q
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m 'not slow'

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench

reliability: setup
	rm -f build/reliability/results.jsonl
	$(BIN)/python -m pytest -m reliability tests/reliability

up: setup
	$(BIN)/trailwarden stack up

down: setup
	$(BIN)/trailwarden stack down

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
