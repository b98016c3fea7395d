# Conveyor's commands. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash
# uv installed by `make install` lands in ~/.local/bin, which a fresh shell may not have.
export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= uv
RUN := $(UV) run --no-sync
PYTEST_ARGS ?=

.PHONY: help install format lint typecheck test test-contract-deep test-fast run down status crds bench all

help: ## List the targets with what they do
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## Install Python, the locked dependencies and the tools the stack needs (idempotent)
	@bash scripts/install.sh

format: install ## Rewrite the code in the project's style
	$(RUN) ruff format conveyor tests benchmarks
	$(RUN) ruff check --fix conveyor tests benchmarks

lint: install ## ruff, ruff format --check, mypy --strict and the import-linter layer contracts
	$(RUN) ruff check conveyor tests benchmarks
	$(RUN) ruff format --check conveyor tests benchmarks
	$(RUN) mypy
	$(RUN) lint-imports

typecheck: install ## mypy --strict alone
	$(RUN) mypy

test: lint ## Lint, then every test against a real local stack (started and stopped by the tests)
	$(RUN) pytest $(PYTEST_ARGS)

test-contract-deep: install ## Schemathesis on the edge with many examples and a new seed (EXAMPLES=300)
	CONVEYOR_SCHEMATHESIS_EXAMPLES=$${EXAMPLES:-300} CONVEYOR_SCHEMATHESIS_SEED= \
		$(RUN) pytest tests/api/test_openapi.py -k schemathesis $(PYTEST_ARGS)

test-fast: install ## The tests that need no running service
	$(RUN) pytest -m "not stack" $(PYTEST_ARGS)

run: install ## Start the local stack (Kafka, PostgreSQL, Redis, SMTP, payments), the five processors and the edge
	$(RUN) conveyor dev up

status: install ## Show the local stack's services and their health
	$(RUN) conveyor dev status

down: install ## Stop everything `make run` started
	$(RUN) conveyor dev down

crds: install ## Regenerate crds/ from the resource models (a test fails when they drift)
	$(RUN) conveyor crds --output crds

bench: install ## Benchmarks, as ratios against baselines measured in the same run
	$(RUN) python -m benchmarks

all: format lint test ## Format, lint and test
