# trailwarden: every target installs what it needs first (make setup), so each works from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv installs both virtualenvs (it downloads and resolves in parallel; pip's resolver backtracks for LocalStack's
# pins); pip installs only uv itself. --compile-bytecode: the .pyc files written once at install, so that no process
# compiles botocore or moto again at each start (where PYTHONDONTWRITEBYTECODE is set, every one would:
# the suite starts hundreds of Python processes, record processors, CLIs, emulators). Not LocalStack's: compiling
# all of it takes 50 s of CPU, more than its one start per run compiles of what it imports.
UV_PIN := uv==0.13.9
UV := $(BIN)/uv

.PHONY: setup run test checks bytecode test-fast lint typecheck bench reliability soak kinesis-local clean up down localstack test-localstack

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(BIN)/python -m pip install --quiet '$(UV_PIN)'
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[local,dev]'
	touch $(STAMP)

# LocalStack in host mode, in a virtualenv of its own (its pins clash with ours); 320 MB; and kinesis-mock (npm), which
# LocalStack would install on its first Kinesis call. On a 2-core machine at
# load 30: 2 min 40 s with uv, 28 min with pip.
# localstack-core 4.10+ fails on Python 3.11; the pins are the versions its 4.9.2 runtime imports cleanly with.
LOCALSTACK_VENV := build/localstack-venv
LOCALSTACK_STAMP := $(LOCALSTACK_VENV)/.installed
LOCALSTACK_PINS := localstack-core[runtime]==4.9.2 cbor2==5.6.5 cryptography==43.0.3 pyOpenSSL==24.2.1 \
	service_identity==24.1.0

localstack: $(LOCALSTACK_STAMP)

$(LOCALSTACK_STAMP): | $(STAMP)
	test -x $(LOCALSTACK_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(LOCALSTACK_VENV)
	$(UV) pip install --quiet --python $(LOCALSTACK_VENV)/bin/python $(foreach p,$(LOCALSTACK_PINS),'$(p)')
	$(BIN)/python -c 'from infra.localstack import install_kinesis_mock; install_kinesis_mock()'
	touch $(LOCALSTACK_STAMP)

# The end-to-end tests on LocalStack (Kinesis, Logs, SNS, SQS, S3, Firehose, CloudWatch) + the emulator (DynamoDB, Glue).
test-localstack: setup localstack bytecode
	$(BIN)/python -m pytest -m localstack tests/on_localstack

run: setup
	$(BIN)/trailwarden run

# The checks and LocalStack's install (downloads and unpacking, mostly) side by side, then the suite with the
# LocalStack smoke in it (the full LocalStack set is `make test-localstack`).
LOCALSTACK_SMOKE := tests/on_localstack/test_localstack_smoke.py

test: setup
	$(MAKE) --no-print-directory -j3 --output-sync=target checks localstack bytecode
	$(BIN)/python -m pytest tests $(LOCALSTACK_SMOKE)

checks: lint typecheck
	$(BIN)/trailwarden rules test -q

# The repository's own modules compiled once (only what changed since), for the same reason as --compile-bytecode.
bytecode: setup
	$(BIN)/python -m compileall -q pipeline consumers infra

test-fast: setup bytecode
	$(BIN)/python -m pytest -m 'not slow'

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

typecheck: setup
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench

reliability: setup
	rm -f build/reliability/results.jsonl
	$(BIN)/python -m pytest -m reliability tests/reliability

soak: setup
	$(BIN)/python -m pytest -p no:cacheprovider -m reliability tests/reliability/soak.py

kinesis-local: setup
	$(BIN)/python -m tests.support.kinesis_local

up: setup
	$(BIN)/trailwarden stack up

down: setup
	$(BIN)/trailwarden stack down

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
