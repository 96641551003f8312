# mlcycle: the two commands are `make demo` and `make test`; everything else is a step of them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip sync --quiet --python $(PY) requirements/dev.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

.PHONY: venv
venv: $(STAMP) ## create .venv from the lock files

.PHONY: lock
lock: venv ## re-resolve requirements/*.lock (runtime first; dev contains it, pin for pin)
	$(UV) pip compile --quiet --python $(PY) requirements/runtime.in -o requirements/runtime.lock
	$(UV) pip compile --quiet --python $(PY) pyproject.toml requirements/runtime.lock \
		--extra dev -o requirements/dev.lock

.PHONY: build
build: venv ## build (or reuse cached) control plane, etcd, kubectl, MinIO and Helm binaries
	$(PY) -m localkube build

.PHONY: up
up: venv ## start the local cluster (reused when already running)
	$(PY) -m localkube up

.PHONY: down
down: venv ## stop the local cluster and everything it started
	$(PY) -m localkube down

.PHONY: demo
demo: venv ## the main job on the local cluster, end to end
	$(PY) -m localkube.demo

.PHONY: lint
lint: venv ## ruff and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

.PHONY: test
test: lint build ## lint, then every test (unit and end-to-end on the local cluster)
	$(VENV)/bin/pytest
