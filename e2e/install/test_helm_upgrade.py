"""A release serving listed namespaces: the operator works with Roles only, `helm upgrade` with
changed values moves every object with it, and `helm uninstall` leaves nothing but the CRDs."""

from __future__ import annotations

import json
from pathlib import Path

from cluster.kubeclient import api_client
from cluster.localcluster import LocalCluster, wait_until
from kubernetes import client
from kubernetes.client.rest import ApiException
from lifecycle.conftest import ModelDeployments
from lifecycle.test_operator_faults import GPU_SPEC, wait_children

from .conftest import Release
from .operator_process import operator_process
from .release import (
    CLUSTER_KINDS,
    NAMESPACED_KINDS,
    crds_present,
    helm_install,
    helm_uninstall,
    labelled,
    objects,
    service_account_token,
    wait_namespace_empty,
    write_kubeconfig,
)

RELEASE = Release(name="md-up", namespace="md-up-system", notes="")


def can_list_pods(api: client.ApiClient, namespace: str | None) -> bool:
    core = client.CoreV1Api(api)
    try:
        if namespace:
            core.list_namespaced_pod(namespace)
        else:
            core.list_pod_for_all_namespaces()
    except ApiException as exc:
        if exc.status != 403:
            raise
        return False
    return True


def test_namespaced_install_upgrade_and_uninstall(
    cluster: LocalCluster, admin: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(admin)
    second = f"{namespace}-b"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=second)))
    try:
        _install_upgrade_uninstall(cluster, admin, namespace, second, tmp_path)
    finally:
        cluster.helm("uninstall", RELEASE.name, "-n", RELEASE.namespace, check=False)
        cluster.kubectl("delete", "namespace", second, RELEASE.namespace, "--wait=false")


def _install_upgrade_uninstall(
    cluster: LocalCluster, admin: client.ApiClient, first: str, second: str, tmp_path: Path
) -> None:
    helm_install(cluster, RELEASE.name, RELEASE.namespace, "--set", f"watchNamespaces={{{first}}}")
    token = service_account_token(admin, RELEASE.namespace, RELEASE.service_account)
    kubeconfig = write_kubeconfig(cluster, token, tmp_path / "kubeconfig")
    with api_client(cluster, token) as as_operator:
        wait_until(lambda: can_list_pods(as_operator, first), 30, f"the Role in {first}")
        assert not can_list_pods(as_operator, second)
        assert not can_list_pods(as_operator, None)

        # The operator serving only `first`, with only the Role there and the small ClusterRole.
        log = tmp_path / "operator.log"
        with operator_process(kubeconfig, log, "scoped-operator", f"--namespace={first}"):
            mds = ModelDeployments(admin, first)
            mds.create("scoped", GPU_SPEC)
            wait_children(mds, "scoped", workers=3)
            mds.delete("scoped")
            wait_until(lambda: not mds.pods("scoped"), 90, "garbage collection of scoped")
        text = log.read_text()
        assert "Not enough permissions" not in text and "Forbidden" not in text, text[-3000:]

        # Upgrade with changed values: one more namespace, one replica, the dashboard on.
        helm_install(
            cluster,
            RELEASE.name,
            RELEASE.namespace,
            "--set",
            f"watchNamespaces={{{first},{second}}}",
            "--set",
            "replicaCount=1",
            "--set",
            "grafana.dashboard.enabled=true",
            "--set",
            "operator.resyncSeconds=10",
            upgrade=True,
        )
        wait_until(lambda: can_list_pods(as_operator, second), 30, f"the Role in {second}")
    deployment = client.AppsV1Api(admin).read_namespaced_deployment(
        RELEASE.service_account, RELEASE.namespace
    )
    assert deployment.spec.replicas == 1 and deployment.status.ready_replicas == 1
    args = deployment.spec.template.spec.containers[0].args
    assert {f"--namespace={first}", f"--namespace={second}", "--resync-seconds=10"} <= set(args)
    mine = labelled(cluster, NAMESPACED_KINDS + CLUSTER_KINDS, RELEASE.name)
    assert f"kopfpeering/{second}/modeldeploy" in mine
    assert f"configmap/{RELEASE.namespace}/{RELEASE.service_account}-dashboard" in mine
    assert not any(o.startswith("poddisruptionbudget/") for o in mine), mine
    history = json.loads(
        cluster.helm("history", RELEASE.name, "-n", RELEASE.namespace, "-o", "json").stdout
    )
    assert [h["status"] for h in history] == ["superseded", "deployed"]

    helm_uninstall(cluster, RELEASE.name, RELEASE.namespace)
    wait_until(
        lambda: not labelled(cluster, NAMESPACED_KINDS + CLUSTER_KINDS, RELEASE.name),
        60,
        "every object of the release to be gone",
    )
    wait_namespace_empty(cluster, RELEASE.namespace)
    for watched in (first, second):
        assert not objects(
            cluster, ("roles.rbac.authorization.k8s.io", "kopfpeerings.kopf.dev"), watched
        )
    # Helm's rule: CRDs stay, so users' ModelDeployments are never deleted by an uninstall.
    assert crds_present(cluster)
