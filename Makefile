# `make run` and `make test` set themselves up on first use (a .venv beside this file).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The browser tests drive Debian's Chromium; Playwright never downloads a browser here.
CHROMIUM := /usr/bin/chromium
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test lint pytest bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(CHROMIUM):
	@echo "Installing Debian's chromium for the browser tests (apt-get, once)..."
	@apt-get update -qq >/tmp/wacrm-apt.log 2>&1 \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >>/tmp/wacrm-apt.log 2>&1 \
		|| { tail -n 30 /tmp/wacrm-apt.log; echo "Could not install chromium (needs root and apt)."; exit 1; }

setup: $(STAMP) $(CHROMIUM)

run: $(STAMP)
	$(BIN)/wacrm db upgrade
	WACRM_PUBLIC_BASE_URL=$${WACRM_PUBLIC_BASE_URL:-http://$(HOST):$(PORT)} $(BIN)/wacrm demo
	$(BIN)/wacrm serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# loadgroup: the browser tests share one worker, so one Chromium serves them all.
pytest: $(STAMP) $(CHROMIUM)
	$(BIN)/pytest -n auto --dist loadgroup

test: lint pytest

# Benchmarks on PostgreSQL (WACRM_BENCH_DATABASE_URL; see bench/README.md): one table.
bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
