# The local Kubernetes control plane (e2e/cluster/): build its binaries, start and stop it.
# Included from the top-level Makefile, which defines PY and STAMP.
#
#   make cluster-binaries   build (or find cached) kube-*, kubectl, etcd, kwok, helm and the real
#                           node's parts (kubelet, containerd, runc, CNI, ...); versions in
#                           e2e/cluster/versions.env, cache in ~/.cache/modeldeploy (override
#                           with MODELDEPLOY_CACHE)
#   make cluster-up         start a cluster and leave it running; prints `export KUBECONFIG=...`
#                           NODE=real adds a real kubelet node running the project's images
#                           (containerd, runc, CNI, kube-proxy, CoreDNS, NetworkPolicies; root)
#   make cluster-down       stop exactly the processes cluster-up started (pids in CLUSTER_STATE)
#   make test-e2e           the e2e tier: its own cluster on free ports in a temp folder
#   make test-node          the real-node tier (e2e/realnode): a kubelet node running the images
#                           built from docker/ (root; Debian packages from scripts/node-packages.sh)
#   make node-images        build (or find cached) the images the real node runs
#
# MODELDEPLOY_SKIP_E2E=1 skips the e2e tier of `make test` (for a machine without Go); CI never
# sets it. Without it, a missing Go toolchain or a failed build fails the run.

# Stdlib-only scripts: they run before (and without) the virtualenv.
CLUSTER_PY ?= python3
CLUSTER_STATE ?= $(CURDIR)/.cache/cluster
CLUSTER_RUN := PYTHONPATH=$(CURDIR)/e2e $(CLUSTER_PY) -m
CLUSTER_CTL := $(CLUSTER_RUN) cluster.localcluster
NODE ?= fake

.PHONY: cluster-binaries cluster-up cluster-down cluster-status test-e2e test-node node-packages \
	node-images

# Progress to stderr: stdout of `make -s cluster-up` is only the export line, so
# `eval "$$(make -s cluster-up)"` sets KUBECONFIG in the calling shell.
cluster-binaries: node-packages
	$(CLUSTER_RUN) cluster.binaries >&2

node-packages:
	@scripts/node-packages.sh

node-images: node-packages
	$(CLUSTER_RUN) cluster.images >&2

cluster-up: cluster-binaries
	@$(CLUSTER_CTL) up $(CLUSTER_STATE) --node $(NODE)

cluster-down:
	$(CLUSTER_CTL) down $(CLUSTER_STATE)

cluster-status:
	$(CLUSTER_CTL) status $(CLUSTER_STATE)

ifeq ($(MODELDEPLOY_SKIP_E2E),1)
test-e2e test-node:
	@echo "$@: SKIPPED (MODELDEPLOY_SKIP_E2E=1); the tier did not run." >&2
else
test-e2e: cluster-binaries $(STAMP)
	$(PY) -m pytest e2e --ignore=e2e/realnode

test-node: cluster-binaries node-images $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest e2e/realnode
endif
