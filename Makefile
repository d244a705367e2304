# Warden's task runner. `make run` and `make test` are the README's two commands.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run serve test test-fast lint fmt typecheck bench fuzz setup system-deps clean

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

FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= decoder sniff credentials routes forwarding rulebook hashlist
FUZZ_FLAGS ?=

fuzz: $(STAMP)  ## long fuzzing run, FUZZ_SECONDS per target; crashes land in build/fuzz/crashes/
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzzing $$t for $(FUZZ_SECONDS) s"; \
	  $(BIN)/python -m tests.fuzz.harness $$t --tolerate-pending \
	    -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "contract broken by:$$failed (inputs in build/fuzz/crashes/)"; exit 1; fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
