# Development and CI entry points. `make run` serves the embedded setup
# (SQLite, task queue in the database); `make test` runs the whole suite,
# on PostgreSQL when DATABASE_URL says so. Production: see README.md.

VENV := .venv
PYTHON := $(VENV)/bin/python
# Written after a successful install; older than pyproject.toml means the
# dependencies changed and `make install` runs pip again.
INSTALLED := $(VENV)/.installed
BENCH_ACCOUNTS ?= 100000
FAULT_ACCOUNTS ?= 20000
# `make load`: full size by default; .ci/run passes a small size.
LOAD_SECONDS ?= 60
LOAD_RUNS ?= 1000
LOAD_INVOICES ?= 1000000
LOAD_DURING_RUN_ACCOUNTS ?= 100000

# The manage.py targets are for development: DEBUG on unless set.
export DEBUG ?= 1

.PHONY: install run test lint bench faults load migrate clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

migrate: install
	$(PYTHON) manage.py migrate --noinput

# The development server always runs with DEBUG on.
run: export DEBUG := 1
run: migrate
	$(PYTHON) manage.py seed_demo
	$(PYTHON) manage.py create_demo_user
	bin/serve

test: install
	$(VENV)/bin/pytest -n auto

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Pages are timed with DEBUG off, as in production (a throwaway key unless
# SECRET_KEY is set). Figures: docs/benchmarks.md.
bench: migrate
	DEBUG=0 SECRET_KEY="$${SECRET_KEY:-bench-$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(40))')}" \
		$(PYTHON) manage.py bench_billrun --accounts $(BENCH_ACCOUNTS)

# The fault tests at full size (CI runs them with 2,000 accounts as part of
# `make test`); DATABASE_URL must be PostgreSQL.
faults: install
	FAULT_ACCOUNTS=$(FAULT_ACCOUNTS) $(VENV)/bin/pytest -p no:xdist tests/test_faults.py

# gunicorn and wrk over a seeded database; DATABASE_URL must be PostgreSQL
# (bin/loadtest refuses anything else). It runs with DEBUG off itself.
load: install
	LOAD_SECONDS=$(LOAD_SECONDS) LOAD_RUNS=$(LOAD_RUNS) LOAD_INVOICES=$(LOAD_INVOICES) \
		LOAD_DURING_RUN_ACCOUNTS=$(LOAD_DURING_RUN_ACCOUNTS) bin/loadtest

# Removes what builds and test runs leave; keeps .venv and the demo database.
clean:
	rm -rf staticfiles .pytest_cache .hypothesis .ruff_cache tests/screenshots $(INSTALLED)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
