"""The operator on the real control plane, without Ray: children, drift, crashes, bad specs.

The dashboard here points at a closed port, so Serve is never reached; what is under test is
everything the operator does with Kubernetes objects and how it reports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cluster.localcluster import wait_until
from kubernetes import client

from .conftest import ModelDeployments
from .harness import OperatorProcess

GPU_SPEC: dict[str, Any] = {
    "model": {"source": "hf://openai/gpt-oss-20b"},
    "resources": {"gpuProduct": "NVIDIA-H100-80GB-HBM3", "cpu": "4", "memory": "16Gi"},
    "scaling": {"mode": "external", "replicas": 3, "minReplicas": 0, "maxReplicas": 4},
}


def child_names(mds: ModelDeployments, name: str) -> tuple[list[str], list[str]]:
    pods = sorted(p.metadata.name for p in mds.pods(name))
    services = sorted(s.metadata.name for s in mds.services(name))
    return pods, services


def wait_children(mds: ModelDeployments, name: str, workers: int, timeout: float = 90) -> None:
    expected_pods = sorted([f"{name}-head"] + [f"{name}-worker-{i}" for i in range(workers)])

    def settled() -> bool:
        pods, services = child_names(mds, name)
        return pods == expected_pods and services == sorted([name, f"{name}-head"])

    wait_until(settled, timeout, f"children of {name}", interval=0.5)


def test_children_status_and_garbage_collection(
    start_operator: Callable[..., OperatorProcess], mds: ModelDeployments
) -> None:
    start_operator()
    mds.create("oss", GPU_SPEC)
    wait_children(mds, "oss", workers=3)

    for pod in mds.pods("oss", "ray-worker"):
        requests = pod.spec.containers[0].resources.requests
        assert requests["nvidia.com/gpu"] == "1"
        terms = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
        [expression] = terms.node_selector_terms[0].match_expressions
        assert (expression.key, expression.values) == (
            "nvidia.com/gpu.product",
            ["NVIDIA-H100-80GB-HBM3"],
        )
        assert pod.metadata.owner_references[0].kind == "ModelDeployment"
    wait_until(
        lambda: all(p.spec.node_name for p in mds.pods("oss", "ray-worker")),
        60,
        "workers scheduled",
    )
    gpu_nodes = {p.spec.node_name for p in mds.pods("oss", "ray-worker")}
    assert all(node.startswith("gpu") for node in gpu_nodes), gpu_nodes

    # The dashboard is unreachable: the status says so, and names the endpoint.
    degraded = mds.wait_condition("oss", "Degraded", "True", "DashboardUnreachable")
    assert "127.0.0.1" in degraded["message"]
    status = mds.get("oss")["status"]
    assert status["endpoint"] == f"http://oss.{mds.namespace}.svc:8000/v1"
    assert status["targetReplicas"] == 3
    assert status["selector"] == "modeldeploy.dev/name=oss,app.kubernetes.io/component=ray-worker"
    wait_until(lambda: mds.get("oss")["status"]["workers"]["ready"] == 3, 60, "3 ready workers")
    reasons = {e.reason for e in mds.events("oss")}
    assert {"Created", "DashboardUnreachable"} <= reasons, reasons

    # kubectl scale through the scale subresource moves the worker count.
    scale = client.CustomObjectsApi(mds.custom.api_client)
    scale.patch_namespaced_custom_object_scale(
        "modeldeploy.dev",
        "v1alpha1",
        mds.namespace,
        "modeldeployments",
        "oss",
        {"spec": {"replicas": 1}},
    )
    wait_children(mds, "oss", workers=1)

    mds.delete("oss")
    wait_until(lambda: child_names(mds, "oss") == ([], []), 90, "garbage collection of oss")


def test_drift_is_repaired(
    start_operator: Callable[..., OperatorProcess], mds: ModelDeployments
) -> None:
    start_operator()
    mds.create(
        "drift", {**GPU_SPEC, "scaling": {"mode": "external", "replicas": 2, "maxReplicas": 2}}
    )
    wait_children(mds, "drift", workers=2)
    mds.core.delete_namespaced_service("drift", mds.namespace)
    mds.core.delete_namespaced_pod("drift-worker-1", mds.namespace, grace_period_seconds=0)
    time.sleep(1)
    wait_children(mds, "drift", workers=2)
    # A child built from another spec (its hash differs) is brought back to the current one.
    mds.core.patch_namespaced_service(
        "drift",
        mds.namespace,
        [
            {"op": "replace", "path": "/spec/ports/0/port", "value": 9999},
            {
                "op": "replace",
                "path": "/metadata/annotations/modeldeploy.dev~1spec-hash",
                "value": "written-by-an-older-spec",
            },
        ],
    )
    wait_until(
        lambda: mds.core.read_namespaced_service("drift", mds.namespace).spec.ports[0].port == 8000,
        30,
        "the endpoint Service port restored",
    )


def test_operator_killed_during_creation_converges(
    start_operator: Callable[..., OperatorProcess], mds: ModelDeployments
) -> None:
    names = [f"crash-{i}" for i in range(4)]
    for name in names:
        mds.create(name, GPU_SPEC)
    operator = start_operator()
    for delay in (0.5, 1.5, 3.0):
        time.sleep(delay)
        operator.kill()
        operator.start()
    for name in names:
        wait_children(mds, name, workers=3, timeout=120)
    # Converged means stable: nothing more is created or deleted afterwards.
    before = {name: child_names(mds, name) for name in names}
    uids = {p.metadata.uid for name in names for p in mds.pods(name)}
    time.sleep(6)
    assert {name: child_names(mds, name) for name in names} == before
    assert {p.metadata.uid for name in names for p in mds.pods(name)} == uids
    all_pods = mds.core.list_namespaced_pod(mds.namespace).items
    assert len(all_pods) == len(names) * 4, "a leaked or duplicated pod"


def test_insufficient_gpu_carries_scheduler_message(
    start_operator: Callable[..., OperatorProcess], mds: ModelDeployments
) -> None:
    start_operator()
    spec = {
        "model": {"source": "hf://openai/gpt-oss-120b"},
        "engine": {"tensorParallelSize": 8},
        "resources": {"gpusPerWorker": 8},
        # Three 8-GPU workers; the cluster has two 8-GPU nodes.
        "scaling": {"mode": "external", "replicas": 3, "maxReplicas": 3},
    }
    mds.create("big", spec)
    ready = mds.wait_condition("big", "Ready", "False", "InsufficientGPU", timeout=120)
    assert "Insufficient nvidia.com/gpu" in ready["message"]
    status = mds.get("big")["status"]
    assert status["workers"]["desired"] == 3 and status["workers"]["pending"] >= 1
    assert any(e.reason == "InsufficientGPU" and e.type == "Warning" for e in mds.events("big"))


def test_invalid_reference_creates_nothing(
    start_operator: Callable[..., OperatorProcess], mds: ModelDeployments
) -> None:
    start_operator()
    spec = {
        **GPU_SPEC,
        "model": {
            "source": "hf://meta-llama/Llama-3.1-8B-Instruct",
            "tokenSecretRef": {"name": "hf-token"},
        },
    }
    mds.create("gated", spec)
    ready = mds.wait_condition("gated", "Ready", "False", "InvalidSpec")
    assert "spec.model.tokenSecretRef" in ready["message"] and "hf-token" in ready["message"]
    assert mds.get("gated")["status"]["phase"] == "Failed"
    assert any(e.reason == "InvalidSpec" for e in mds.events("gated"))
    time.sleep(3)
    assert child_names(mds, "gated") == ([], [])

    # Fixing the cause is enough: the next reconcile proceeds.
    mds.core.create_namespaced_secret(
        mds.namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="hf-token"),
            string_data={"token": "hf_not_a_real_token"},
        ),
    )
    wait_children(mds, "gated", workers=3)
