# One command for the demo, one for the tests; both build .venv from nothing but Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: demo test lint typecheck unit tools grafana-tools clean prometheusrule chaos bench bench-chain

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit("genesys-exporter needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	@touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/genesys-exporter demo $(ARGS)

# promtool (Debian's prometheus package) checks our exposition; the e2e tests also start the real binaries.
tools:
	@command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq prometheus prometheus-alertmanager >/dev/null; }

# Grafana's dashboard schema (npm @grafana/schema) and tsc, to type-check the dashboards.
SCHEMA_DIR := $(VENV)/grafana-schema
$(SCHEMA_DIR)/.installed: tests/deploy/grafana-schema/package.json | $(BIN)/python
	@command -v npm >/dev/null || { echo "npm is needed to check the dashboards against Grafana's schema"; exit 1; }
	mkdir -p $(SCHEMA_DIR) && cp tests/deploy/grafana-schema/package.json $(SCHEMA_DIR)/
	npm install --prefix $(SCHEMA_DIR) --no-audit --no-fund --silent
	@touch $@

grafana-tools: $(SCHEMA_DIR)/.installed

unit: $(VENV)/.installed-test grafana-tools
	$(BIN)/pytest --cov --cov-report=term:skip-covered $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check exporter tests
	$(BIN)/ruff format --check exporter tests

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy --strict exporter

test: tools unit lint typecheck

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .coverage

chaos: $(VENV)/.installed
	$(BIN)/genesys-exporter chaos

bench: $(VENV)/.installed
	$(BIN)/genesys-exporter bench scale $(ARGS)

# The whole chain with Debian's real Prometheus: 2,000 queues, 50,000 agents, 3 OAuth clients, 10 minutes.
bench-chain: $(VENV)/.installed tools
	$(BIN)/genesys-exporter bench chain --sizes 2000x50000 --clients 3 --minutes 10 $(ARGS)

prometheusrule: $(VENV)/.installed-test
	$(BIN)/python deploy/kubernetes/prometheusrule.py
