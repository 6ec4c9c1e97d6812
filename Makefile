# The front door. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=
# Test processes (pytest-xdist): most tests wait on daemons, databases and engines, so two share
# two cores well (16 -> 10 minutes here); each file runs on one worker (tests/conftest.py).
# TEST_WORKERS=0 runs the suite in this process.
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help run test test-deploy check lint typecheck pytest system-deps test-system-deps migrate bench bench-peers chaos clean image

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS=":.*## "} {printf "  %-18s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEVSTAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

BENCHSTAMP := $(VENV)/.installed-bench
$(BENCHSTAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

system-deps: ## Install libmagic for make run (apt-get as root; otherwise stops with the command)
	@./scripts/system-deps.sh runtime

test-system-deps: ## Install what the tests need (chromium, libatomic1, docker, podman...; scripts/system-deps.sh)
	@./scripts/system-deps.sh test

run: system-deps $(STAMP) ## Set up everything (venv, DB, admin login) and run portal + daemons on SQLite
	$(BIN)/python -m daemons.run_all

migrate: $(STAMP) ## Apply database migrations (DATABASE_URL or the local SQLite)
	$(BIN)/multiflexi db upgrade

lint: $(DEVSTAMP) ## ruff (lint + format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEVSTAMP) ## mypy strict on multiflexi_web, daemons, app.py
	$(BIN)/mypy

pytest: $(DEVSTAMP) ## The whole pytest suite (SQLite and PostgreSQL)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test: system-deps test-system-deps $(DEVSTAMP) ## Install test needs, then lint, types and every test
	$(MAKE) lint typecheck pytest

test-deploy: test-system-deps $(DEVSTAMP) ## Build the image offline and run the compose set with a smoke job (minutes)
	$(BIN)/pytest -m deploy tests/test_deploy_compose.py

check: test test-deploy ## Same as CI

bench: $(DEVSTAMP) ## Run every benchmark (prints JSON figures; installs wrk)
	@./scripts/system-deps.sh bench
	$(BIN)/python bench/executor.py --db sqlite --jobs 500
	$(BIN)/python bench/scheduler.py --db sqlite --templates 10000
	$(BIN)/python bench/portal.py --db sqlite --jobs 100000
	$(BIN)/python bench/metrics.py --db sqlite --jobs 100000
	$(BIN)/python bench/events.py --seconds 5 --rounds 1
	$(BIN)/python bench/operations.py --templates 200

PEERS_ARGS ?=
bench-peers: $(BENCHSTAMP) ## huey, celery, rq, procrastinate and this project on one workload (Redis + PostgreSQL; PEERS_ARGS="--jobs 200")
	$(BIN)/python bench/peers.py $(PEERS_ARGS)

CHAOS_ARGS ?=
chaos: $(DEVSTAMP) ## Chaos suite on a private PostgreSQL (minutes; CHAOS_ARGS="--quick" or "--scenario X")
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

IMAGE ?= multiflexi:latest
BASE_IMAGE ?= python:3.11-slim-bookworm
image: ## Build the container image offline from wheels made here (docs/deploy.md)
	PYTHON=$(PYTHON) ./deploy/wheels.sh
	docker build --network none --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMAGE) .

clean: ## Remove the venv and caches (keeps ./var and .env)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
