# Conveyor's commands. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash
# uv installed by `make install` lands in ~/.local/bin, which a fresh shell may not have.
export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= uv
RUN := $(UV) run --no-sync
PYTEST_ARGS ?=
# Test worker processes for `make test` (pytest-xdist), each with its own stack; 0 runs the
# tests in the pytest process itself (as CONVEYOR_TEST_STACK=reuse needs: one stack, one user).
TEST_WORKERS ?= 2
# e.g. SOAK_ARGS='--orders 20000 --rate 40 --through-edge'
SOAK_ARGS ?=
# e.g. LOAD_ARGS='--populations 1000,2500 --step-seconds 30'
LOAD_ARGS ?=

.PHONY: control-plane help install format lint typecheck test test-long test-contract-deep test-fast test-web run down status crds manifests kind-up kind-down dashboards bench throughput soak load web screenshots all

help: ## List the targets with what they do
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## Install Python, the locked dependencies and the tools the stack needs (idempotent)
	@bash scripts/install.sh

format: install ## Rewrite the code in the project's style
	$(RUN) ruff format conveyor tests benchmarks dashboards
	$(RUN) ruff check --fix conveyor tests benchmarks dashboards

lint: install ## ruff, ruff format --check, mypy --strict and the import-linter layer contracts
	$(RUN) ruff check conveyor tests benchmarks dashboards
	$(RUN) ruff format --check conveyor tests benchmarks dashboards
	$(RUN) mypy
	$(RUN) lint-imports

typecheck: install ## mypy --strict alone
	$(RUN) mypy

# Coverage's data file by absolute path, so processes started in other folders (the stack's
# services run in its home) write theirs beside the tests' own.
COVERAGE_DATA := $(CURDIR)/.coverage

test: lint control-plane web ## Lint, the web app's Vitest suite, then every test but the long scenarios (the browser tests too) against a real local stack and control plane (started and stopped by the tests), with coverage of every process; fails below the floor
	cd web && npm run typecheck && npm test
	@rm -f $(COVERAGE_DATA) $(COVERAGE_DATA).*
	COVERAGE_FILE=$(COVERAGE_DATA) $(RUN) coverage run -m pytest \
		--numprocesses $(TEST_WORKERS) -m "not long" $(PYTEST_ARGS)
	@COVERAGE_FILE=$(COVERAGE_DATA) $(RUN) coverage combine --quiet
	COVERAGE_FILE=$(COVERAGE_DATA) $(RUN) coverage report

test-long: install control-plane ## The long scenarios `make test` leaves out (replicas under rebalances, rollouts, stalls, restarts after a sweep, Kafka over SASL_SSL, schemathesis); CI runs them after `make test`
	$(RUN) pytest --numprocesses $(TEST_WORKERS) -m long $(PYTEST_ARGS)

test-contract-deep: install ## Schemathesis on the edge with many examples and a new seed (EXAMPLES=300)
	CONVEYOR_SCHEMATHESIS_EXAMPLES=$${EXAMPLES:-300} CONVEYOR_SCHEMATHESIS_SEED= \
		$(RUN) pytest tests/api/test_openapi.py -k schemathesis $(PYTEST_ARGS)

test-fast: install ## The tests that need no running service (no stack, no control plane)
	$(RUN) pytest -m "not stack and not cluster" $(PYTEST_ARGS)

web: ## Build the storefront and admin console (web/dist): npm ci from web/package-lock.json when node_modules differs, vite build when stale
	@bash scripts/web-build.sh

test-web: install web ## The web app alone: type-check, Vitest, then the browser tests in Chromium against a real stack
	cd web && npm run typecheck && npm test
	$(RUN) pytest tests/web $(PYTEST_ARGS)

screenshots: install web ## Screenshots of the storefront and the console for README (docs/images/), against the stack `make run` started
	$(RUN) python scripts/screenshots.py

run: install web ## Start the local stack (Kafka, PostgreSQL, Redis, SMTP, payments), the six processors, the edge and Prometheus
	$(RUN) conveyor dev up

status: install ## Show the local stack's services and their health
	$(RUN) conveyor dev status

down: install ## Stop everything `make run` started
	$(RUN) conveyor dev down

crds: install ## Regenerate crds/ from the resource models (a test fails when they drift)
	$(RUN) conveyor crds --output crds

# kubectl comes from the control plane's build (instant once cached), so the render never
# depends on whichever kubectl and kustomize a machine happens to have.
manifests: crds ## Render manifests/install.yaml with kubectl kustomize (a test fails when it drifts)
	@kubectl=$$(bash scripts/control-plane/build.sh)/kubectl && \
		rendered=$$("$$kubectl" kustomize manifests) && \
		{ echo '# Rendered from manifests/ by `make manifests`; do not edit.'; echo "$$rendered"; } \
			> manifests/install.yaml && echo "wrote manifests/install.yaml"

kind-up: ## Run Conveyor on a local kind cluster `conveyor` (needs docker, kind and kubectl)
	@bash scripts/kind-up.sh

kind-down: ## Delete the kind cluster `conveyor` and everything in it
	@bash scripts/kind-down.sh

control-plane: ## Build the local Kubernetes control plane's binaries once (cached in ~/.cache/conveyor/k8s; the first build takes ~15 min)
	@bash scripts/control-plane/build.sh >/dev/null

dashboards: install ## Regenerate the Grafana dashboards in dashboards/grafana/ from dashboards/*.py (a test fails when they drift)
	$(RUN) python -m dashboards

bench: install ## Benchmarks, as ratios against baselines measured in the same run
	$(RUN) python -m benchmarks

throughput: install ## Throughput alone: open-loop climbs of the pipeline, the edge and a raw aiokafka baseline, CPU per order (THROUGHPUT_ARGS=...)
	$(RUN) python -m benchmarks.throughput $(THROUGHPUT_ARGS)

soak: install ## Soak, about an hour: 100,000 orders per scenario at 60/s, completion rate per window, changelog record size, restore time (SOAK_ARGS=...)
	$(RUN) python -m benchmarks.soak $(SOAK_ARGS)

load: install ## Shoppers on the whole local stack: a browsing and ordering mix climbing to 10,000 at once, p95 per action against 200 ms, about 10 min (LOAD_ARGS=...)
	$(RUN) python -m benchmarks.shoppers $(LOAD_ARGS)

all: format lint test ## Format, lint and test
