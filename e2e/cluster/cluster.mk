# The local Kubernetes control plane (e2e/cluster/): build its binaries, start and stop it.
# Included from the top-level Makefile, which defines PY and STAMP.
#
#   make cluster-binaries   build (or find cached) kube-*, kubectl, etcd, kwok, helm; versions in
#                           e2e/cluster/versions.env, cache in ~/.cache/modeldeploy (override
#                           with MODELDEPLOY_CACHE)
#   make cluster-up         start a cluster and leave it running; prints `export KUBECONFIG=...`
#   make cluster-down       stop exactly the processes cluster-up started (pids in CLUSTER_STATE)
#   make test-e2e           the e2e tier: its own cluster on free ports in a temp folder
#
# MODELDEPLOY_SKIP_E2E=1 skips the e2e tier of `make test` (for a machine without Go); CI never
# sets it. Without it, a missing Go toolchain or a failed build fails the run.

# Stdlib-only scripts: they run before (and without) the virtualenv.
CLUSTER_PY ?= python3
CLUSTER_STATE ?= $(CURDIR)/.cache/cluster
CLUSTER_RUN := PYTHONPATH=$(CURDIR)/e2e $(CLUSTER_PY) -m

.PHONY: cluster-binaries cluster-up cluster-down cluster-status test-e2e

# Progress to stderr: stdout of `make -s cluster-up` is only the export line, so
# `eval "$$(make -s cluster-up)"` sets KUBECONFIG in the calling shell.
cluster-binaries:
	$(CLUSTER_RUN) cluster.binaries >&2

cluster-up: cluster-binaries
	@$(CLUSTER_RUN) cluster.localcluster up $(CLUSTER_STATE)

cluster-down:
	$(CLUSTER_RUN) cluster.localcluster down $(CLUSTER_STATE)

cluster-status:
	$(CLUSTER_RUN) cluster.localcluster status $(CLUSTER_STATE)

ifeq ($(MODELDEPLOY_SKIP_E2E),1)
test-e2e:
	@echo "test-e2e: SKIPPED (MODELDEPLOY_SKIP_E2E=1); the e2e tier did not run." >&2
else
test-e2e: cluster-binaries $(STAMP)
	$(PY) -m pytest e2e
endif
