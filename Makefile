# The two commands the README starts with: `make demo` and `make test`. Each provisions what it needs
# (idempotently, tests/env/provision.sh) before it runs.
SHELL := /bin/bash
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
export PATH := $(ROOT)/builder/node_modules/.bin:$(VENV)/bin:$(PATH)
PYTEST_ARGS ?=
RUFF := $(VENV)/bin/ruff --config $(ROOT)/builder/pyproject.toml

IMAGE ?= devcontainer-builder:dev
# the builder image's base: the provisioned stand-in when there is one (no registry on the test machines)
BASE_IMAGE ?= $(shell docker image inspect devcontainer-builder-test/debian:trixie-slim >/dev/null 2>&1 \
	&& echo devcontainer-builder-test/debian:trixie-slim || echo debian:trixie-slim)
# moon (dev tooling only) is installed by tests/env/provision.sh at this version; it is not in
# builder/package-lock.json because npm records only this platform's moon binary there (npm/cli#8320)
export MOON_VERSION := 2.5.5
VERSION := $(shell cat builder/version.txt)

REGISTRY ?=

.PHONY: demo test lint format unit bench docs env-demo env-test env-unit image push registry-set

env-demo:
	bash tests/env/provision.sh demo

env-test:
	bash tests/env/provision.sh test

demo: env-demo
	bash examples/demo.sh

# pytest-xdist workers for `make test` (the tests mostly wait on containers, so more than the cores; see
# docs/development.md for the measurements); PYTEST_WORKERS=0 runs them in this one process
PYTEST_WORKERS ?= 4

# bats runs beside pytest (its 14 tests take half a minute), its output shown once pytest is done
test: env-test lint image
	@bats_log=$$(mktemp); IMAGE=$(IMAGE) bats tests/bats >"$$bats_log" 2>&1 & bats_pid=$$!; \
	DCB_FULL_TIER=1 $(VENV)/bin/pytest tests -n $(PYTEST_WORKERS) $(PYTEST_ARGS); status=$$?; \
	wait $$bats_pid || status=1; echo "== bats tests/bats"; cat "$$bats_log"; rm -f "$$bats_log"; exit $$status

# The quick tier: pure-Python tests that need only Python 3.11+ (no engine, no root, no Node, no
# provisioning beyond the virtualenv), under a minute. Tests that read the pinned CLI's code run when
# `make test` has installed it.
unit: env-unit
	$(VENV)/bin/pytest tests/unit -p no:cacheprovider $(PYTEST_ARGS)

env-unit:
	bash tests/env/provision.sh unit

lint:
	$(RUFF) check builder tests
	$(RUFF) format --check builder tests
	cd builder && $(VENV)/bin/mypy
	shellcheck tests/env/*.sh examples/*.sh .ci/run builder/devcontainer_builder/policy/docker-guard builder/devcontainer_builder/policy/docker-compose-guard tests/support/hostile/*.sh

format:
	$(RUFF) check --fix builder tests
	$(RUFF) format builder tests

# The builder image. Extra CA certificates of this machine (a TLS-intercepting proxy) are trusted
# while the build fetches from npm and PyPI, and are not shipped (see builder/Dockerfile).
image: env-test
	rm -rf builder/.build-ca && mkdir -p builder/.build-ca
	cp /usr/local/share/ca-certificates/*.crt builder/.build-ca/ 2>/dev/null || true
	docker build -q -t $(IMAGE) --build-arg VERSION=$(VERSION) --build-arg BASE=$(BASE_IMAGE) builder >/dev/null
	@docker image inspect -f '$(IMAGE): {{.Size}} bytes' $(IMAGE)

# Push the image to REGISTRY (host[:port][/path]), tagged with version.txt; log in to it first.
push: registry-set image
	docker tag $(IMAGE) $(REGISTRY)/devcontainer-builder:$(VERSION)
	docker push -q $(REGISTRY)/devcontainer-builder:$(VERSION)

registry-set:
	@test -n "$(REGISTRY)" || { echo "make push: set REGISTRY, for example REGISTRY=ghcr.io/acme" >&2; exit 2; }

bench: env-test image
	@status=0; for bench in up podman compose logs fallback serve template cluster ide; do \
	  $(VENV)/bin/python tests/bench/bench_$$bench.py || status=1; echo; \
	done; exit $$status

docs:
	cd tests && $(VENV)/bin/python -m support.settings_table ../docs/configuration.md
