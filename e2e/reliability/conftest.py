"""Fixtures of the reliability tests: the lifecycle tier's (CRDs, ModelDeployment CRUD, the tiny
model) imported rather than copied, plus a local Ray head whose start is confirmed, an operator
pointed at any dashboard address (a relay in front of a Ray head) and a pool of extra fake GPU
nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cluster.localcluster import FakeNode, LocalCluster, free_port, wait_until
from lifecycle.conftest import crds, mds, tiny_model
from lifecycle.harness import LocalRayHead, OperatorProcess

# Re-exported: pytest finds fixtures by name in this module.
__all__ = ["crds", "mds", "tiny_model"]

POOL_PRODUCT = "NVIDIA-L4"
POOL_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def ray_head() -> Iterator[LocalRayHead]:
    """A local Ray head standing in for the head pod, started for the module's tests."""
    head = LocalRayHead()
    try:
        head.start_confirmed()
        yield head
    finally:
        head.close()


@pytest.fixture
def operator_at(
    cluster: LocalCluster, crds: None, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """Starts `modeldeploy operator` with the given dashboard and metrics addresses (default: a
    closed port, the dashboard unreachable); every one started is stopped after the test."""
    started: list[OperatorProcess] = []

    def start(
        dashboard_url: str | None = None, metrics_url: str | None = None, serve_port: int = 8000
    ) -> OperatorProcess:
        closed = f"http://127.0.0.1:{free_port()}"
        operator = OperatorProcess(
            cluster.kubeconfig,
            dashboard_template=dashboard_url or closed,
            metrics_template=metrics_url or closed,
            serve_port=serve_port,
            log_dir=tmp_path,
        )
        started.append(operator)
        operator.start()
        return operator

    yield start
    for operator in started:
        operator.stop()


def _pool_ready(cluster: LocalCluster, names: set[str]) -> bool:
    ready = set()
    for node in cluster.api("GET", "/api/v1/nodes")["items"]:
        conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
        # Ours is the only taint left once the node lifecycle controller saw kwok's heartbeat.
        taints = [t["key"] for t in node["spec"].get("taints") or []]
        if conditions.get("Ready") == "True" and taints == [POOL_TAINT["key"]]:
            ready.add(node["metadata"]["name"])
    return names <= ready


@pytest.fixture
def gpu_pool(cluster: LocalCluster) -> Iterator[str]:
    """Four more fake GPU nodes (16 GPUs each, product NVIDIA-L4), tainted like GPU nodes
    commonly are; worker pods tolerate the taint, and a spec asking for this product lands only
    here. Removed after the test, so the session's default nodes are what other tests see."""
    nodes = [FakeNode(f"reliability-gpu-{i}", gpus=16, gpu_product=POOL_PRODUCT) for i in range(4)]
    for node in nodes:
        manifest = node.manifest()
        manifest["spec"] = {"taints": [POOL_TAINT]}
        cluster.api("POST", "/api/v1/nodes", manifest)
    try:
        names = {n.name for n in nodes}
        wait_until(lambda: _pool_ready(cluster, names), 120, "the extra GPU nodes Ready")
        yield POOL_PRODUCT
    finally:
        for node in nodes:
            cluster.api("DELETE", f"/api/v1/nodes/{node.name}")
