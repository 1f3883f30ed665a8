"""The chart's two replicas as kopf peers: one reconciles, the other stands by and takes over
when the active one dies. Both run as the chart's ServiceAccount, with the peer ids the chart
gives them (POD_ID from the pod name), in the ClusterKopfPeering the chart creates.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from cluster.localcluster import LocalCluster, wait_until
from kubernetes import client
from lifecycle.conftest import ModelDeployments
from lifecycle.test_operator_faults import GPU_SPEC, wait_children

from .chart import PEERING_NAME
from .conftest import Release
from .operator_process import operator_process

ONE_WORKER: dict[str, Any] = {
    **GPU_SPEC,
    "scaling": {"mode": "external", "replicas": 1, "maxReplicas": 1},
}


def peers(cluster: LocalCluster) -> dict[str, dict[str, Any]]:
    done = cluster.kubectl("get", "clusterkopfpeering", PEERING_NAME, "-o", "json")
    status: dict[str, dict[str, Any]] = json.loads(done.stdout).get("status") or {}
    return status


def _paused(log: str) -> bool:
    """Whether a replica's kopf is paused now, from its log: kopf starts every peer paused and
    logs each change, so paused unless its last change was a resume."""
    resumed = log.rfind("Resuming operations")
    return resumed == -1 or resumed < log.rfind("Pausing operations")


def test_one_replica_is_active_and_the_standby_takes_over(
    cluster: LocalCluster,
    admin: client.ApiClient,
    release: Release,
    operator_kubeconfig: Path,
    namespace: str,
    tmp_path: Path,
) -> None:
    ids = ("modeldeploy-replica-a", "modeldeploy-replica-b")
    logs = {pod_id: tmp_path / f"{pod_id}.log" for pod_id in ids}
    with (
        operator_process(operator_kubeconfig, logs[ids[0]], ids[0]) as first,
        operator_process(operator_kubeconfig, logs[ids[1]], ids[1]) as second,
    ):
        procs = dict(zip(ids, (first, second), strict=True))
        wait_until(lambda: set(ids) <= set(peers(cluster)), 30, "both replicas in the peering")
        priorities = {pod_id: peers(cluster)[pod_id]["priority"] for pod_id in ids}
        # kopf pauses every peer when the highest priority is shared: nothing would reconcile.
        assert len(set(priorities.values())) == 2, (
            f"both replicas have peering priority {priorities}: kopf pauses them all"
        )
        active = max(ids, key=lambda pod_id: priorities[pod_id])
        standby = next(pod_id for pod_id in ids if pod_id != active)
        # The replica that starts first works until it sees the other: a standby may have run
        # handlers before it paused. From then on, it must run none.
        wait_until(lambda: _paused(logs[standby].read_text()), 30, "the standby paused")
        standby_before = len(logs[standby].read_text())

        mds = ModelDeployments(admin, namespace)
        mds.create("ha", ONE_WORKER)
        wait_children(mds, "ha", workers=1, timeout=60)
        # What shows who works is each replica's handler log lines.
        handled = "kopf.objects"
        wait_until(lambda: handled in logs[active].read_text(), 10, "the active's handler lines")
        since_paused = logs[standby].read_text()[standby_before:]
        assert handled not in since_paused, (
            f"the standby {standby} ran handlers while {active} was active:\n"
            + since_paused[-3000:]
        )

        # The active replica dies without a goodbye; the standby resumes once its keep-alive
        # expires (kopf's peering lifetime, 60 s) and repairs what happened meanwhile.
        procs[active].send_signal(signal.SIGKILL)
        procs[active].wait(timeout=30)
        [worker] = mds.pods("ha", "ray-worker")
        mds.core.delete_namespaced_pod("ha-worker-0", namespace, grace_period_seconds=0)
        wait_until(
            lambda: any(
                p.metadata.uid != worker.metadata.uid for p in mds.pods("ha", "ray-worker")
            ),
            150,
            "the standby to recreate the deleted worker",
        )
        mds.delete("ha")
        wait_until(lambda: not mds.pods("ha"), 90, "garbage collection of ha")
