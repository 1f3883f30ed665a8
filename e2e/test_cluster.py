"""The local control plane does what the operator's tests rely on.

Each test shows one piece of real Kubernetes behaviour: scheduling onto kwok's fake nodes,
extended-resource (GPU) accounting, owner-reference garbage collection, RBAC with ServiceAccount
tokens from the TokenRequest API, and helm against the cluster.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cluster.kubeclient import api_client
from cluster.localcluster import (
    DEFAULT_NODES,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    SA_ISSUER,
    FakeNode,
    LocalCluster,
    running,
    wait_until,
)
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.rest import ApiException

ROOT = Path(__file__).resolve().parents[1]
CHART = Path(__file__).parent / "testdata" / "charts" / "demo"
GPU_NODES = {n.name for n in DEFAULT_NODES if n.gpus}


def apply(cluster: LocalCluster, namespace: str, *objects: dict[str, Any]) -> None:
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)


def pod_spec(gpus: int = 0) -> dict[str, Any]:
    # The image is never pulled: kwok only pretends the container runs.
    container: dict[str, Any] = {"name": "main", "image": "registry.invalid/app:1"}
    if gpus:
        container["resources"] = {"limits": {GPU_RESOURCE: str(gpus)}}
    return {"containers": [container]}


def pod(name: str, gpus: int = 0) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": pod_spec(gpus)}


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec()},
        },
    }


def is_ready(p: client.V1Pod) -> bool:
    conditions = {c.type: c.status for c in p.status.conditions or []}
    return p.status.phase == "Running" and conditions.get("Ready") == "True"


def test_deployment_pods_run_on_fake_nodes(
    cluster: LocalCluster, admin: client.ApiClient, namespace: str
) -> None:
    apply(cluster, namespace, deployment("web", replicas=3))
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=120s")
    pods = client.CoreV1Api(admin).list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 3
    assert all(is_ready(p) for p in pods), [p.status for p in pods]
    assert {p.spec.node_name for p in pods} <= {n.name for n in DEFAULT_NODES}


def test_gpu_pod_is_placed_on_a_gpu_node(
    cluster: LocalCluster, admin: client.ApiClient, namespace: str
) -> None:
    apply(cluster, namespace, pod("eight-gpus", gpus=8))
    core = client.CoreV1Api(admin)
    placed = wait_until(
        lambda: is_ready(p := core.read_namespaced_pod("eight-gpus", namespace)) and p,
        timeout=60,
        what="the 8-GPU pod to run",
    )
    assert placed.spec.node_name in GPU_NODES
    node = core.read_node(placed.spec.node_name)
    assert node.metadata.labels[GPU_PRODUCT_LABEL] == "NVIDIA-H100-80GB-HBM3"
    # Free the node's GPUs for the other tests of the session.
    core.delete_namespaced_pod("eight-gpus", namespace, grace_period_seconds=0)


def test_pod_asking_for_nine_gpus_stays_pending(
    cluster: LocalCluster, admin: client.ApiClient, namespace: str
) -> None:
    apply(cluster, namespace, pod("nine-gpus", gpus=9))
    core = client.CoreV1Api(admin)

    def unschedulable() -> client.V1PodCondition | None:
        p = core.read_namespaced_pod("nine-gpus", namespace)
        return next(
            (
                c
                for c in p.status.conditions or []
                if c.type == "PodScheduled" and c.status == "False"
            ),
            None,
        )

    condition = wait_until(unschedulable, timeout=60, what="the scheduler to give up on 9 GPUs")
    assert condition.reason == "Unschedulable"
    assert f"Insufficient {GPU_RESOURCE}" in condition.message
    p = core.read_namespaced_pod("nine-gpus", namespace)
    assert p.status.phase == "Pending"
    assert p.spec.node_name is None


def test_deleting_owner_garbage_collects_owned_objects(
    cluster: LocalCluster, admin: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(admin)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    for name in ("child-a", "child-b"):
        meta = client.V1ObjectMeta(name=name, owner_references=[ref])
        core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=meta))
    core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="child-svc", owner_references=[ref]),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=8000)]),
        ),
    )

    core.delete_namespaced_config_map("owner", namespace)

    def children_left() -> list[str]:
        cms = [c.metadata.name for c in core.list_namespaced_config_map(namespace).items]
        svcs = [s.metadata.name for s in core.list_namespaced_service(namespace).items]
        return [n for n in cms + svcs if n.startswith("child-")]

    wait_until(lambda: not children_left(), timeout=60, what="garbage collection of the children")


def test_service_account_needs_a_role_to_list(
    cluster: LocalCluster, admin: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(admin)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    token = core.create_namespaced_service_account_token(
        "reader",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[SA_ISSUER], expiration_seconds=600)
        ),
    ).status.token

    with api_client(cluster, token) as as_reader:
        reader = client.CoreV1Api(as_reader)
        with pytest.raises(ApiException) as denied:
            reader.list_namespaced_pod(namespace)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:reader" in denied.value.body

        rbac = client.RbacAuthorizationV1Api(admin)
        rbac.create_namespaced_role(
            namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="pod-reader"),
                rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])],
            ),
        )
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="reader-reads-pods"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)
                ],
            ),
        )
        # The authorizer reads roles from an informer cache: allow it a moment to see them.
        wait_until(lambda: _can_list_pods(reader, namespace), timeout=30, what="the Role to apply")
        # Still only what the Role grants.
        with pytest.raises(ApiException) as still_denied:
            reader.list_namespaced_secret(namespace)
        assert still_denied.value.status == 403


def _can_list_pods(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.list_namespaced_pod(namespace)
    except ApiException as exc:
        if exc.status != 403:
            raise
        return False
    return True


def test_helm_template_renders_the_chart(cluster: LocalCluster) -> None:
    out = cluster.helm("template", "demo", str(CHART), "--set", "message=templated").stdout
    docs = out.split("\n---")
    assert any("kind: ConfigMap" in d and "name: demo-config" in d for d in docs), out
    assert any("kind: Deployment" in d and "name: demo-app" in d for d in docs), out
    assert 'message: "templated"' in out


def test_helm_install_deploys_and_uninstalls(
    cluster: LocalCluster, admin: client.ApiClient, namespace: str
) -> None:
    cluster.helm("install", "demo", str(CHART), "-n", namespace, "--wait", "--timeout", "2m")
    status = json.loads(cluster.helm("status", "demo", "-n", namespace, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    core = client.CoreV1Api(admin)
    assert core.read_namespaced_config_map("demo-config", namespace).data == {
        "message": "hello from the demo chart"
    }
    ready = client.AppsV1Api(admin).read_namespaced_deployment("demo-app", namespace)
    assert ready.status.ready_replicas == 2

    cluster.helm("uninstall", "demo", "-n", namespace, "--wait", "--timeout", "2m")
    assert not core.list_namespaced_config_map(
        namespace, label_selector="app.kubernetes.io/instance=demo"
    ).items


def test_another_cluster_with_its_own_nodes_runs_alongside(cluster: LocalCluster) -> None:
    nodes = [FakeNode("a100-node-0", gpus=4, gpu_product="NVIDIA-A100-SXM4-80GB")]
    with running(nodes) as other:
        assert other.server != cluster.server  # free ports: runs never collide
        listed = json.loads(other.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        assert [n["metadata"]["name"] for n in listed] == ["a100-node-0"]
        assert listed[0]["status"]["allocatable"][GPU_RESOURCE] == "4"
        assert listed[0]["metadata"]["labels"][GPU_PRODUCT_LABEL] == "NVIDIA-A100-SXM4-80GB"
        started = list(other.procs)
    assert len(started) == 5
    assert not any(p.alive() for p in started)  # stopped, by pid, when the block ends


SYSTEM_PYTHON = Path("/usr/bin/python3")


def test_make_cluster_up_and_down_run_under_the_system_python3(tmp_path: Path) -> None:
    """The Make targets that leave a cluster running need no virtualenv: e2e/cluster is
    stdlib-only (the system python3 has none of the project's packages)."""
    probe = [str(SYSTEM_PYTHON), "-c", "import modeldeploy_serving"]
    assert subprocess.run(probe, capture_output=True, cwd=tmp_path).returncode != 0
    state = tmp_path / "cluster"
    make = ["make", "-s", f"CLUSTER_STATE={state}", f"CLUSTER_PY={SYSTEM_PYTHON}"]
    try:
        up = subprocess.run(
            [*make, "cluster-up"], cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        assert up.returncode == 0, up.stderr[-3000:]
        assert up.stdout.strip() == f"export KUBECONFIG={state / 'kubeconfig'}"
        api = kube_config.new_client_from_config(str(state / "kubeconfig"))
        assert client.VersionApi(api).get_code().git_version.startswith("v1.")
        status = subprocess.run([*make, "cluster-status"], cwd=ROOT, capture_output=True, text=True)
        assert status.returncode == 0, status.stderr[-3000:]
    finally:
        down = subprocess.run([*make, "cluster-down"], cwd=ROOT, capture_output=True, text=True)
    assert down.returncode == 0, down.stderr[-3000:]
    assert not state.exists() or not LocalCluster.read_state(state)
