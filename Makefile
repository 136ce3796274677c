# The two commands a newcomer needs (see README): `make demo` and `make test`.
PYTHON ?= python3
PYTEST_WORKERS ?= 2

.PHONY: demo test install lint

install:
	bash scripts/install-deps.sh --test

demo:
	bash scripts/install-deps.sh
	genoshare demo --data-dir demo-node --port 8080

test: install
	url=$$(bash scripts/start-postgres.sh) && GENOSHARE_TEST_POSTGRES_URL=$$url $(PYTHON) -m pytest -n $(PYTEST_WORKERS)

lint:
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks
