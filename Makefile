# Two commands for a new user: `make run` (service + demo data) and `make test` (the test suite).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Benchmarks use the local PostgreSQL and Redis (tests find them by themselves: scripts/run_tests.py).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/billing
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: venv run test lint chaos bench scale-check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) scripts/demo.py

lint: venv
	$(VENV)/bin/ruff check .

test: venv
	$(PY) scripts/run_tests.py $(PYTEST_ARGS)

bench: venv
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(PY) -m bench $(BENCH_ARGS)

chaos: venv
	$(PY) -m tests.reliability
	RUN_CHAOS=1 $(PY) scripts/run_tests.py tests/reliability

# docker-compose.yml with three worker replicas, for real (needs a Docker engine; README, Scaling).
scale-check: venv
	$(PY) scripts/compose_scale_check.py $(SCALE_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache
