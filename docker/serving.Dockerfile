# syntax=docker/dockerfile:1
# The serving image that every ModelDeployment's Ray head and GPU worker pods run: Ray Serve,
# the CUDA build of vLLM (torch from PyPI brings its own CUDA libraries; the node's driver is
# mounted by the NVIDIA container toolkit) and modeldeploy's serving package.
# Build from the repository root:  docker build -f docker/serving.Dockerfile -t IMAGE .
# The base is pinned by tag and digest; vLLM by version (scripts/install.sh pins the same one,
# and a test checks they agree); Ray by the `serve` extra of pyproject.toml.

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS build
ARG VLLM_VERSION=0.32.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY serving ./serving
# One resolution for vLLM and the serve extra, so torch, ray and vLLM's own pins agree.
RUN python -m venv /opt/modeldeploy \
 && /opt/modeldeploy/bin/pip install ".[serve]" "vllm==${VLLM_VERSION}" \
 && /opt/modeldeploy/bin/ray --version

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
# Triton (under vLLM) compiles its kernel launchers with the system C compiler at run time.
# Versions come from the digest-pinned Debian release, so they are not repeated here.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
# uid/gid 1000: the securityContext of the operator's head and worker pods (pods.py).
RUN groupadd --gid 1000 ray \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/ray --shell /bin/bash ray
COPY --from=build /opt/modeldeploy /opt/modeldeploy
ENV PATH=/opt/modeldeploy/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    VLLM_NO_USAGE_STATS=1
USER 1000:1000
WORKDIR /home/ray
# 6379 GCS, 8265 dashboard, 10001 Ray client, 8000 Serve (the OpenAI endpoint), 8080 metrics.
EXPOSE 6379 8265 10001 8000 8080
# In Kubernetes the operator sets each pod's command (`ray start ...`). Without it the image
# serves one ModelDeployment file on a single machine, as `modeldeploy serve` does locally:
#   docker run --gpus all -v ./model.yaml:/etc/modeldeploy/model.yaml -p 8000:8000 IMAGE
CMD ["modeldeploy", "serve", "-f", "/etc/modeldeploy/model.yaml", "--host", "0.0.0.0", "--port", "8000"]
