# syntax=docker/dockerfile:1
# The operator image: `modeldeploy operator` (kopf) and nothing of Ray or vLLM.
# Build from the repository root:  docker build -f docker/operator.Dockerfile -t IMAGE .
# The base is pinned by tag and digest; bump both together (serving.Dockerfile uses the same).
# BASE_IMAGE may name another Debian bookworm image with python3.11, python3-venv,
# python-is-python3 and passwd: e2e/cluster/images.py builds one from Debian packages where
# Docker Hub is out of reach, and passes it as --build-arg BASE_IMAGE=...
ARG BASE_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The dependencies first, from pyproject.toml alone, so a change to the code reuses this layer.
COPY pyproject.toml README.md ./
RUN python -m venv /opt/modeldeploy \
 && python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print(*p["dependencies"], sep="\n")' >/tmp/requirements.txt \
 && /opt/modeldeploy/bin/pip install --no-compile -r /tmp/requirements.txt
COPY operator ./operator
COPY serving ./serving
# A virtualenv copied whole into the final stage: no compilers or build files there.
RUN /opt/modeldeploy/bin/pip install --no-compile . \
 && /opt/modeldeploy/bin/modeldeploy operator --help >/dev/null

FROM ${BASE_IMAGE}
# The chart runs it as this uid with a read-only root filesystem: nothing may write outside /tmp.
RUN groupadd --gid 65532 modeldeploy \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin modeldeploy
COPY --from=build /opt/modeldeploy /opt/modeldeploy
ENV PATH=/opt/modeldeploy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
# 8080: Prometheus metrics (--metrics-port); 8081: kopf's /healthz (--liveness).
EXPOSE 8080 8081
ENTRYPOINT ["modeldeploy"]
CMD ["operator"]
