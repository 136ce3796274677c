# The two commands a newcomer needs (see README): `make demo` and `make test`.
# Both install into a virtual environment ($(VENV)) at the versions pinned in constraints.txt.
VENV ?= .venv
PORT ?= 8080
PYTEST_WORKERS ?= 2
BIN := $(VENV)/bin

.PHONY: demo test install lock lint

install:
	VENV=$(VENV) bash scripts/install-deps.sh --test

demo:
	VENV=$(VENV) bash scripts/install-deps.sh
	$(BIN)/genoshare demo --data-dir demo-node --port $(PORT)

test: install
	url=$$(bash scripts/start-postgres.sh) && GENOSHARE_TEST_POSTGRES_URL=$$url $(BIN)/python -m pytest -n $(PYTEST_WORKERS)

# Resolve pyproject.toml's ranges afresh and pin the result in constraints.txt (then run `make test`).
lock:
	bash scripts/lock.sh

# The static checks the suite runs (ruff lint and format, mypy, the import-linter layers), on their own:
# the same test, so `make lint` and CI cannot disagree.
lint: install
	$(BIN)/python -m pytest -q -n 0 tests/test_static_checks.py
