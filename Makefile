# NeuroRoute: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
T ?= tests
# The documented development key: loopback only, never use it on a reachable address.
DEV_MASTER_KEY := sk-neuroroute-dev

.DEFAULT_GOAL := help
.PHONY: help install run migrate test test-bench test-docker lint typecheck fmt bench bench-quick bench-usage clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required (set PYTHON=python3.11)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $@

install: $(VENV)/.installed ## Create .venv and install NeuroRoute with its dev/test/bench extras

migrate: install ## Apply database migrations (NEUROROUTE_DATABASE_URL; default SQLite in ./data); idempotent
	NEUROROUTE_MASTER_KEY=$${NEUROROUTE_MASTER_KEY:-$(DEV_MASTER_KEY)} \
		$(BIN)/flask --app wsgi db upgrade

run: migrate ## Migrate the database, then start Gunicorn (gevent) on 127.0.0.1:PORT (default 8000), mock models
	NEUROROUTE_MASTER_KEY=$${NEUROROUTE_MASTER_KEY:-$(DEV_MASTER_KEY)} PORT=$(PORT) \
		$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: install ## Run the test suite with branch coverage of app/ (T=path to run a subset)
	$(BIN)/python -m pytest --cov=app --cov-branch --cov-report=term:skip-covered --ignore=tests/bench $(T)

test-bench: install ## The benchmark harness's smoke test (a seconds-long bench run, ~1 min; CI runs it)
	$(BIN)/python -m pytest --no-cov tests/bench

# The first test builds the images and starts the stack, hence the long per-test timeout.
test-docker: install ## Build the image, run the compose stack (2 gateways behind nginx) and smoke-test it (needs Docker)
	NEUROROUTE_TEST_DOCKER=1 $(BIN)/python -m pytest tests/docker --timeout=900 --no-cov

lint: install typecheck ## ruff, codespell and mypy strict
	$(BIN)/ruff check app tests bench wsgi.py gunicorn.conf.py
	$(BIN)/codespell

typecheck: install ## mypy strict on app/
	$(BIN)/mypy

fmt: install ## Format and autofix with ruff
	$(BIN)/ruff format app tests bench wsgi.py gunicorn.conf.py
	$(BIN)/ruff check --fix app tests bench wsgi.py gunicorn.conf.py

bench: install ## Load-test NeuroRoute vs Flask/FastAPI/aiohttp relays + py-spy profile (~15 min) -> bench/results/
	$(BIN)/python -m bench.run --profile-app $(BENCH_ARGS)

bench-usage: install ## Usage recording on vs off, side by side, and CPU per record of each sink (~5 min)
	$(BIN)/python -m bench.usage_overhead $(BENCH_ARGS)
	$(BIN)/python -m bench.usage_sinks

bench-quick: install ## Reduced load-test subset (< 3 min), same report files
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
