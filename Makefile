# mlcycle: the two commands are `make demo` and `make test`; everything else is a step of them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

# NODES=N: the local cluster's real node count (`make up NODES=2`); unset, a new cluster has one
# and a running one keeps its count. Exported, so `make demo` and `make test` honour it too.
ifdef NODES
export LOCALKUBE_NODES := $(NODES)
endif

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set, Python caches nothing it compiles,
# and every process (tests, the operator, the servers a benchmark starts) would compile each
# module it imports again: about 1.4 s more for scikit-learn's import alone.
$(STAMP): pyproject.toml requirements/dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) requirements/dev.lock
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
build: venv ## build (or reuse cached) control plane, kubelet, kube-proxy, etcd, CoreDNS, MinIO, Helm
	$(PY) -m localkube build

# The real node's host packages (Debian's): container runtime, CNI plugins, image tools, and
# iptables for kube-proxy. dpkg -s first, so a warm run costs nothing and needs no network.
NODE_PACKAGES := containerd runc containernetworking-plugins buildah debootstrap iptables
.PHONY: node-deps
node-deps: ## apt-get install the real node's packages, when missing
	@missing=$$(for p in $(NODE_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing >/dev/null; \
	fi

.PHONY: images
images: venv node-deps build ## buildah: base (debootstrap), trainer, serving, operator, pause, CoreDNS; cached by input hash
	$(PY) -m localkube images

.PHONY: up
up: venv node-deps ## start the local cluster (reused when already running); NODES=2 for two nodes
	$(PY) -m localkube up

.PHONY: down
down: venv ## stop the local cluster and everything it started
	$(PY) -m localkube down

.PHONY: demo
demo: venv node-deps ## the main job on the local cluster, end to end
	$(PY) -m localkube.demo

.PHONY: demo-continuous
demo-continuous: venv node-deps ## continuous training on the local cluster: drift, retraining, champion gate, cooldown
	$(PY) -m localkube.demo_continuous

.PHONY: lint
lint: venv ## ruff and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

.PHONY: test
test: lint build node-deps images ## lint, then every test (unit and end-to-end on the local cluster)
	$(VENV)/bin/pytest

.PHONY: test-faults
test-faults: venv node-deps images ## only the fault-injection suite: the operator SIGKILLed at every write boundary, its state compared with a fault-free run's
	$(VENV)/bin/pytest -m faults tests/e2e/test_faults.py

.PHONY: bench-serving
bench-serving: venv ## ours vs mlflow models serve vs KServe, then ours: workers, HTTP stack, start-up, fuzzing, drift monitoring's cost (last line); writes docs/benchmarks.md
	$(PY) -m bench.serving.run
	$(PY) -m bench.serving.options
	$(PY) -m bench.serving.startup --rounds 5
	$(PY) -m bench.serving.fuzz
	$(PY) -m bench.serving.drift

.PHONY: bench-search
bench-search: venv images ## a 40-trial search as a TrainingJob (parallelism 1 and 2) vs plain Optuna, pruning's saving, operator RSS; writes docs/benchmarks.md
	$(PY) -m bench.search.run

.PHONY: bench-cluster
bench-cluster: build ## local cluster start-up, memory at rest, trivial Job (restarts the stack)
	$(PY) -m bench.cluster.run

.PHONY: bench-ci
bench-ci: venv ## time `make test` on a fresh clone (COLD=1: from empty caches); stop your cluster first
	$(PY) -m bench.ci.run $(if $(COLD),--cold)

.PHONY: bench-operator
bench-operator: venv images ## the operator at scale (2,000 objects, 200 deployments), at rest, MLflow load, platform overhead, failover; last line JSON; writes docs/benchmarks.md
	$(PY) -m bench.scale.run

.PHONY: bench-training
bench-training: venv ## apply-to-Job latency over 20 TrainingJobs, platform overhead around fit
	$(PY) -m bench.training.run

# --- The Helm chart and container images (issue 5) -------------------------------------------
# `docker-images` and `kind-demo` need Docker (not available where the tests run); `chart-test`
# needs only the local cluster. `images` builds the same Dockerfiles here, with buildah.
IMAGE_REGISTRY ?= ghcr.io/mlcycle
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/mlcycle/Chart.yaml)
KIND_VERSION := v0.33.0
KIND_CLUSTER ?= mlcycle
KIND := go run sigs.k8s.io/kind@$(KIND_VERSION)
TOOL = $$($(PY) -c 'from localkube import build; print(build.binary_path("$(1)"))')

.PHONY: docker-images
docker-images: ## docker build the operator, trainer and serving images (needs Docker)
	docker build -f operator/Dockerfile -t $(IMAGE_REGISTRY)/operator:$(IMAGE_TAG) .
	docker build -f trainer_image/Dockerfile -t $(IMAGE_REGISTRY)/trainer:$(IMAGE_TAG) .
	docker build -f serving_image/Dockerfile -t $(IMAGE_REGISTRY)/serving:$(IMAGE_TAG) .

.PHONY: kind-demo
kind-demo: docker-images build ## kind cluster, the images loaded, the chart installed, examples/iris applied (needs Docker)
	$(KIND) get clusters | grep -qx $(KIND_CLUSTER) || $(KIND) create cluster --name $(KIND_CLUSTER) --wait 120s
	for image in operator trainer serving; do \
		$(KIND) load docker-image --name $(KIND_CLUSTER) $(IMAGE_REGISTRY)/$$image:$(IMAGE_TAG); done
	$(call TOOL,helm) upgrade --install mlcycle charts/mlcycle --kube-context kind-$(KIND_CLUSTER) \
		--namespace mlcycle --create-namespace --wait --timeout 10m \
		--set image.tag=$(IMAGE_TAG) --set workloads.trainerImage.tag=$(IMAGE_TAG) \
		--set workloads.servingImage.tag=$(IMAGE_TAG) --set workloads.imagePullPolicy=IfNotPresent
	$(call TOOL,kubectl) --context kind-$(KIND_CLUSTER) -n mlcycle apply -f examples/iris/
	$(call TOOL,kubectl) --context kind-$(KIND_CLUSTER) -n mlcycle wait --for=condition=Ready \
		--timeout=15m dataset/iris trainingjob/iris-rf modeldeployment/iris
	$(call TOOL,kubectl) --context kind-$(KIND_CLUSTER) -n mlcycle get mlcycle

.PHONY: chart-test
chart-test: build ## helm lint + render checks, then every scenario through the local apiserver's server-side dry run
	$(VENV)/bin/pytest -q tests/unit/test_chart_*.py \
		"tests/e2e/test_chart.py::test_rendered_chart_passes_a_server_side_dry_run"
