# The sandbox ("pause") image of the local real node: each pod's network namespace is held by
# this process. registry.k8s.io's pause image cannot be pulled here, so it is Debian's static
# catatonit in pause mode (-P), as podman does. Built by e2e/cluster/images.py.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE} AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends catatonit \
 && rm -rf /var/lib/apt/lists/*

FROM scratch
COPY --from=build /usr/bin/catatonit /pause
USER 65535:65535
ENTRYPOINT ["/pause", "-P"]
