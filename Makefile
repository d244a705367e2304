# Warden's task runner. `make run` and `make test` are the README's two commands.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run serve test test-fast lint fmt typecheck bench setup system-deps clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with warden and the dev tools

run: $(STAMP)  ## set up and run the service on embedded defaults (SQLite, ./data, bundled model)
	$(BIN)/warden serve

test: $(STAMP)  ## set up and run every test (starts PostgreSQL and nginx itself)
	bash scripts/system-deps.sh
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

test-fast: $(STAMP)  ## unit tests only
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)  ## run the benchmarks (prints numbers and ratios)
	$(BIN)/python bench/scan_throughput.py
	$(BIN)/python bench/authz_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
