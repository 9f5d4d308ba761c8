# Meterdesk — everything a newcomer needs is `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
STAMP := $(VENV)/.installed
# Every package, dev tools included, at the exact version and hashes resolved from pyproject.toml.
LOCK := requirements-dev.lock
export PORT HOST

.PHONY: run test lint typecheck format lock lock-check stripe-emulator bench clean help

help:
	@echo "make run              the portal with its jobs on http://$(HOST):$(PORT)/ (SQLite, emulator)"
	@echo "make test             the test suite (embedded mode)"
	@echo "make lint             ruff check + format check"
	@echo "make typecheck        mypy (django-stubs, djangorestframework-stubs)"
	@echo "make lock             $(LOCK) re-resolved from pyproject.toml (LOCK_ARGS=--upgrade: newest)"
	@echo "make stripe-emulator  the Stripe emulator alone on STRIPE_EMULATOR_PORT (12111)"
	@echo "make bench            the benchmarks in bench/ (needs Redis for the hot-path ones)"

# The project runs from its checkout (pyproject.toml lists no packages): only its requirements
# are installed, and pip refuses anything the lock does not pin by hash.
$(STAMP): $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	@touch $(STAMP)

# For every platform, resolved for the oldest Python pyproject.toml allows; an existing lock's
# pins are kept unless pyproject.toml rules them out or LOCK_ARGS=--upgrade.
RESOLVE = $(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command "make lock" --quiet

lock: $(STAMP)
	$(RESOLVE) $(LOCK_ARGS) -o $(LOCK)

# Fails when pyproject.toml asks for something the lock does not hold: re-resolving a copy of the
# lock changes nothing otherwise.
lock-check: $(STAMP)
	@copy=$$(mktemp) && trap 'rm -f "$$copy"' EXIT && cp $(LOCK) "$$copy" \
		&& $(RESOLVE) -o "$$copy" \
		&& { diff -u $(LOCK) "$$copy" || { echo "$(LOCK) is stale: run make lock" >&2; exit 1; }; }

# DEBUG stays off unless set (DEBUG=true make run: tracebacks in the browser, for this machine
# only); static files are served by WhiteNoise either way (WHITENOISE_USE_FINDERS).
run: $(STAMP)
	@mkdir -p var/mail
	@$(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

stripe-emulator: $(STAMP)
	$(BIN)/python -m devtools.stripe_emulator --port $${STRIPE_EMULATOR_PORT:-12111} \
		--state-file $${STRIPE_EMULATOR_STATE_FILE:-var/stripe-emulator.json}

bench: $(STAMP)
	@for script in bench/*.py; do case $$script in bench/_*) continue;; esac; \
		echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache .mypy_cache
