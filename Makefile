# The two commands the README starts with: `make demo` and `make test`. Each provisions what it needs
# (idempotently, tests/env/provision.sh) before it runs.
SHELL := /bin/bash
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
export PATH := $(ROOT)/builder/node_modules/.bin:$(VENV)/bin:$(PATH)
PYTEST_ARGS ?=
RUFF := $(VENV)/bin/ruff --config $(ROOT)/builder/pyproject.toml

.PHONY: demo test lint format unit bench readme env-demo env-test

env-demo:
	bash tests/env/provision.sh demo

env-test:
	bash tests/env/provision.sh test

demo: env-demo
	bash examples/demo.sh

test: env-test lint
	$(VENV)/bin/pytest tests $(PYTEST_ARGS)

unit: env-test
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

lint:
	$(RUFF) check builder tests
	$(RUFF) format --check builder tests
	shellcheck tests/env/*.sh examples/*.sh .ci/run

format:
	$(RUFF) check --fix builder tests
	$(RUFF) format builder tests

bench: env-test
	@status=0; for bench in up logs fallback; do \
	  $(VENV)/bin/python tests/bench/bench_$$bench.py || status=1; echo; \
	done; exit $$status

readme:
	$(VENV)/bin/python -m devcontainer_builder.options README.md
