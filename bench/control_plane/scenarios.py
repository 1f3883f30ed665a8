"""The two measured scenarios, on a running LocalCluster with the CRDs installed."""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from cluster.localcluster import FakeNode, LocalCluster, wait_until

from .operator_run import OperatorRun, cpu_seconds
from .watch import MD_PATH, NamespaceWatches, Progress

ROOT = Path(__file__).resolve().parents[2]
GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"
PODS_PER_NODE = 250


@dataclass(frozen=True)
class Settings:
    latency_deployments: int
    scale_deployments: int
    workers: int
    resync_seconds: float | None  # None: the operator's own default
    timeout_s: float


def spec(workers: int) -> dict[str, Any]:
    """A GPU ModelDeployment with `workers` one-GPU workers and small requests, so a few fake
    nodes hold hundreds of them and the scheduler never makes a pod wait."""
    return {
        "model": {"source": "hf://openai/gpt-oss-20b"},
        "resources": {"gpuProduct": GPU_PRODUCT, "cpu": "1", "memory": "2Gi"},
        "scaling": {"mode": "external", "replicas": workers, "minReplicas": 0, "maxReplicas": 8},
        "ray": {"headResources": {"cpu": "100m", "memory": "256Mi"}},
    }


def nodes_for(settings: Settings) -> list[FakeNode]:
    """Enough fake GPU nodes for both scenarios' pods at once (the first one's may linger)."""
    deployments = settings.latency_deployments + settings.scale_deployments
    pods = deployments * (1 + settings.workers)
    count = max(2, math.ceil(pods / (PODS_PER_NODE * 0.8)))
    return [
        FakeNode(
            f"gpu-node-{i}",
            gpus=PODS_PER_NODE,
            gpu_product=GPU_PRODUCT,
            cpu=str(PODS_PER_NODE * 2),
            memory=f"{PODS_PER_NODE * 4}Gi",
            pods=PODS_PER_NODE,
        )
        for i in range(count)
    ]


def create_namespace(cluster: LocalCluster, name: str) -> None:
    """A namespace whose default ServiceAccount exists (pods are refused until it does)."""
    cluster.api("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    sa = f"/api/v1/namespaces/{name}/serviceaccounts"
    wait_until(lambda: cluster.api("GET", sa)["items"], 60, f"default ServiceAccount of {name}")


def delete_namespace(cluster: LocalCluster, name: str, timeout: float) -> None:
    """Delete and wait until it is gone, so the next scenario starts from a quiet cluster."""
    cluster.api("DELETE", f"/api/v1/namespaces/{name}")

    def gone() -> bool:
        return not any(
            ns["metadata"]["name"] == name
            for ns in cluster.api("GET", "/api/v1/namespaces")["items"]
        )

    wait_until(gone, timeout, f"namespace {name} deleted", interval=1.0)


def create_model_deployment(cluster: LocalCluster, namespace: str, name: str, workers: int) -> None:
    body = {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec(workers),
    }
    cluster.api("POST", MD_PATH.format(ns=namespace), body)


def _is_complete(progress: Progress, name: str, workers: int) -> bool:
    return progress.complete_at(name, workers) is not None


def apply_to_children(
    cluster: LocalCluster, operator: OperatorRun, namespace: str, settings: Settings
) -> dict[str, Any]:
    """Scenario 1: one create at a time; children latency (and status latency) of each.

    The next create waits for the previous one's status too, so each sample starts from an
    operator that is idle but for the resync timers of those created before.
    """
    children_ms: list[float] = []
    status_ms: list[float] = []
    with NamespaceWatches(cluster, namespace) as progress:
        operator.start()
        operator.wait_live()
        for i in range(settings.latency_deployments):
            name = f"latency-{i:03d}"
            create_model_deployment(cluster, namespace, name, settings.workers)
            created = time.monotonic()
            progress.wait(
                partial(_is_complete, progress, name, settings.workers),
                settings.timeout_s,
                f"children and status of {name}",
            )
            children = progress.children_at(name, settings.workers) or created
            status = progress.statuses[name]
            children_ms.append(max(0.0, children - created) * 1000)
            status_ms.append(max(0.0, status - created) * 1000)
    return {"children_ms": children_ms, "status_ms": status_ms}


def _cpu_by_process(cluster: LocalCluster, operator: OperatorRun) -> dict[str, float]:
    """CPU seconds so far of each control plane component, the operator and this benchmark."""
    used = {proc.name: cpu_seconds(proc.pid) for proc in cluster.procs}
    used["operator"] = cpu_seconds(operator.proc.pid) if operator.proc else 0.0
    used["benchmark"] = cpu_seconds(os.getpid())
    return used


def _create_many(cluster: LocalCluster, namespace: str, names: list[str], workers: int) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: create_model_deployment(cluster, namespace, n, workers), names))


def reconcile_from_scratch(
    cluster: LocalCluster, operator: OperatorRun, namespace: str, settings: Settings
) -> dict[str, Any]:
    """Scenario 2: many ModelDeployments wait for an operator that is not running; the clock
    starts when it is started and stops when the last one has all children and a status."""
    names = [f"scale-{i:04d}" for i in range(settings.scale_deployments)]
    workers = settings.workers
    _create_many(cluster, namespace, names, workers)
    with NamespaceWatches(cluster, namespace) as progress:
        cpu_before = _cpu_by_process(cluster, operator)
        started = operator.start()
        peak_kb = peak_sockets = 0

        def all_done() -> bool:
            return all(progress.complete_at(n, workers) is not None for n in names)

        deadline = started + settings.timeout_s
        while not all_done():
            if time.monotonic() > deadline or not operator.alive():
                raise TimeoutError("not every ModelDeployment was reconciled in time")
            peak_kb = max(peak_kb, operator.peak_rss_kb())
            peak_sockets = max(peak_sockets, operator.open_sockets())
            time.sleep(0.25)  # times come from the watches; this only samples memory
        peak_kb = max(peak_kb, operator.peak_rss_kb())
        cpu_after = _cpu_by_process(cluster, operator)
        children = [progress.children_at(n, workers) or started for n in names]
        statuses = [progress.statuses[n] for n in names]
        first = min(min(progress.pods.values()), min(progress.services.values()))
    return {
        "total_s": max(max(children), max(statuses)) - started,
        "all_children_s": max(children) - started,
        "all_statuses_s": max(statuses) - started,
        "first_child_s": first - started,
        "peak_rss_mb": peak_kb / 1024,
        "peak_open_sockets": peak_sockets,
        # Where the machine's time went: who the bottleneck is, on a machine shared with others.
        "cpu_seconds": {k: round(cpu_after[k] - cpu_before[k], 1) for k in cpu_after},
    }
