"""The kube-apiserver restarts under a running operator (a control-plane upgrade, a crash):
the operator's watches and connections are cut, and it must pick them up again by itself.

After the restart a new ModelDeployment gets its children and status, a deleted child of an
older one comes back, and the operator process is the same one throughout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cluster.localcluster import LocalCluster, wait_until
from lifecycle.conftest import ModelDeployments
from lifecycle.harness import OperatorProcess

from .cluster_objects import labelled_objects, modeldeployments
from .inventory import take_inventory

SPEC: dict[str, Any] = {
    "model": {"source": "hf://Qwen/Qwen2.5-0.5B-Instruct"},
    "resources": {"gpuProduct": "NVIDIA-H100-80GB-HBM3", "cpu": "1", "memory": "4Gi"},
    "ray": {"headResources": {"cpu": "100m", "memory": "256Mi"}},
    "scaling": {"mode": "external", "replicas": 2, "minReplicas": 0, "maxReplicas": 2},
}
# No Ray head runs here: a settled status says the dashboard is unreachable.
SETTLED_REASON = "DashboardUnreachable"


def converged(mds: ModelDeployments, expected: dict[str, int]) -> bool:
    api = mds.custom.api_client
    inventory = take_inventory(
        modeldeployments(api, mds.namespace),
        labelled_objects(api, mds.namespace),
        expected,
        SETTLED_REASON,
    )
    return inventory.converged() and set(inventory.children) == set(expected)


def test_operator_resumes_after_apiserver_restart(
    operator_at: Callable[..., OperatorProcess], mds: ModelDeployments, cluster: LocalCluster
) -> None:
    operator = operator_at()
    assert operator.proc is not None
    pid = operator.proc.pid
    mds.create("before", SPEC)
    expected = {"before": 2}
    wait_until(lambda: converged(mds, expected), 120, "children and status of 'before'")
    server = cluster.server

    started = time.monotonic()
    cluster.restart_apiserver()
    restart_s = time.monotonic() - started
    assert cluster.server == server  # same address: clients only see their connections cut

    # A ModelDeployment created after the restart: the operator's watch must be live again.
    mds.create("after", SPEC)
    expected["after"] = 2
    wait_until(lambda: converged(mds, expected), 180, "children and status of 'after'")
    created_s = time.monotonic() - started - restart_s
    assert mds.get("after")["status"]["endpoint"] == f"http://after.{mds.namespace}.svc:8000/v1"

    # A child deleted after the restart comes back: the periodic reconcile runs again.
    [old_worker, _] = sorted(p.metadata.name for p in mds.pods("before", "ray-worker"))
    old_uid = next(p.metadata.uid for p in mds.pods("before") if p.metadata.name == old_worker)
    deleted = time.monotonic()
    mds.core.delete_namespaced_pod(old_worker, mds.namespace, grace_period_seconds=0)
    mds.core.delete_namespaced_service("before", mds.namespace)
    wait_until(
        lambda: (
            all(p.metadata.uid != old_uid for p in mds.pods("before")) and converged(mds, expected)
        ),
        120,
        "the deleted worker pod and endpoint Service of 'before' recreated",
    )
    repaired_s = time.monotonic() - deleted
    assert {s.metadata.name for s in mds.services("before")} == {"before", "before-head"}
    print(
        f"apiserver restart: down and up in {restart_s:.1f} s; a new ModelDeployment converged "
        f"{created_s:.1f} s later; deleted children recreated after {repaired_s:.1f} s"
    )

    # The same process did all of it: it never exited and was never restarted.
    assert operator.proc.poll() is None and operator.proc.pid == pid
