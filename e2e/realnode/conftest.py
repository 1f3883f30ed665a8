"""Fixtures of the real-node tier: a control plane with one kubelet node that runs containers.

The session's cluster (overriding e2e/conftest.py's) has no fake nodes, so every pod lands on
the real node (e2e/cluster/node.py) and runs from images built here (e2e/cluster/images.py),
pushed to the node's local registry. When the session ends the node is torn down and the host
must look as it did before: no containers, mounts, interfaces or netfilter tables left.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import images, node
from cluster.localcluster import LocalCluster, running

from . import workload


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    # A SIGTERM (a CI timeout) then unwinds like Ctrl-C, so the node is torn down.
    signal.signal(signal.SIGTERM, _interrupt)
    before = node.host_footprint()
    with running(nodes=(), real_node=True) as local:
        yield local
    left = {k: v for k, v in node.host_footprint().items() if v != before[k]}
    assert not left, f"the real node left on the host: {left}"


@pytest.fixture(scope="session")
def image_refs(cluster: LocalCluster) -> dict[str, str]:
    """Each project image as the node pulls it: REGISTRY/modeldeploy/NAME:TAG."""
    assert cluster.node is not None
    return {
        name: images.push_image(name, cluster.node.registry_port)
        for name in ("operator", "serving-cpu")
    }


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    return workload.tiny_model()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
