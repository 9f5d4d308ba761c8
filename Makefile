# Meterdesk — everything a newcomer needs is `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
STAMP := $(VENV)/.installed
export PORT HOST

.PHONY: run test lint format stripe-emulator bench clean help

help:
	@echo "make run              the portal with its jobs on http://$(HOST):$(PORT)/ (SQLite, emulator)"
	@echo "make test             the test suite (embedded mode)"
	@echo "make lint             ruff check + format check"
	@echo "make stripe-emulator  the Stripe emulator alone on STRIPE_EMULATOR_PORT (12111)"
	@echo "make bench            the benchmarks in bench/ (needs Redis for the hot-path ones)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet ".[dev]"
	@touch $(STAMP)

run: $(STAMP)
	@mkdir -p var/mail
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

stripe-emulator: $(STAMP)
	$(BIN)/python -m devtools.stripe_emulator --port $${STRIPE_EMULATOR_PORT:-12111}

bench: $(STAMP)
	@for script in bench/*.py; do case $$script in bench/_*) continue;; esac; \
		echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
