# Millrace: `make dev` runs the platform, `make test` runs the tests; both install first.
PYTHON ?= python3
UV := .tools/bin/uv
RUN := $(UV) run --frozen

.PHONY: install dev test test-unit test-integration test-e2e test-faults lint format schemas docs bench bench-mlserver compose-check clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

install: $(UV)
	$(UV) sync --all-packages --frozen

dev: install
	$(RUN) millrace dev

test: install
	$(RUN) pytest

test-unit: install
	$(RUN) pytest tests/unit

test-integration: install
	$(RUN) pytest tests/integration

test-e2e: install
	$(RUN) pytest tests/e2e

# the fault suite alone (also part of make test): dependencies going away under real processes
test-faults: install
	$(RUN) pytest -m faults

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy libs/common/src services/*/src cli/src

format: install
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

schemas: install
	$(RUN) python -m millrace_common.contracts libs/common/schemas

# docs/configuration.md from the Settings classes (a test fails when it is stale)
docs: install
	$(RUN) python tools/config_docs.py

bench: install .bench-venv/bin/mlserver
	$(RUN) python -m bench

# MLServer, the comparison in bench/serving.py, lives in a venv of its own (never in
# the lock); if it cannot be installed the benchmark says so and goes on
bench-mlserver: .bench-venv/bin/mlserver

.bench-venv/bin/mlserver:
	-$(PYTHON) -m venv .bench-venv && .bench-venv/bin/pip install --quiet mlserver mlserver-sklearn

# the compose file as Compose itself reads it (v2 plugin or v1 docker-compose), else as
# the deploy tests parse it: no Docker engine is needed either way; then the Prometheus
# config and alert rules with promtool, and deploy/k8s with kubectl kustomize, when installed
compose-check:
	@if docker compose version >/dev/null 2>&1; then docker compose -f deploy/docker-compose.yml config -q; \
	elif command -v docker-compose >/dev/null; then docker-compose -f deploy/docker-compose.yml config -q; \
	else $(MAKE) --no-print-directory install && $(RUN) pytest -q tests/unit/deploy; fi
	@echo "deploy/docker-compose.yml: valid"
	@if command -v promtool >/dev/null; then \
	promtool check config deploy/prometheus/prometheus.yml && \
	promtool check rules deploy/prometheus/alerts.yml; \
	else echo "promtool not found (Debian: apt-get install prometheus): Prometheus files not checked"; fi
	@if command -v kubectl >/dev/null; then \
	kubectl kustomize deploy/k8s >/dev/null && echo "deploy/k8s: kustomize build ok"; fi

clean:
	rm -rf .millrace .venv .tools
