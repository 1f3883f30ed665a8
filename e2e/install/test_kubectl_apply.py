"""The plain-manifest path: `kubectl apply -f crds/ -f deploy/`, then `kubectl delete -f deploy/`,
with the same outcome as the Helm release (deploy/ is the chart rendered with its defaults)."""

from __future__ import annotations

import json

from cluster.kubeclient import api_client
from cluster.localcluster import DEFAULT_NODES, LocalCluster, wait_until
from kubernetes import client

from .chart import DEPLOY_MANIFEST, ROOT
from .release import (
    CLUSTER_KINDS,
    NAMESPACED_KINDS,
    crds_present,
    labelled,
    peering_owner,
    service_account_token,
)

NAMESPACE = "modeldeploy-system"
NAME = "modeldeploy"


def namespace_gone(cluster: LocalCluster) -> bool:
    done = cluster.kubectl("get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "name")
    return not done.stdout.strip()


def test_kubectl_apply_installs_and_delete_removes(
    cluster: LocalCluster, admin: client.ApiClient, peering_free: None
) -> None:
    crds, deploy = str(ROOT / "crds"), str(DEPLOY_MANIFEST.parent)
    cluster.kubectl("apply", "-f", crds, "-f", deploy)
    try:
        cluster.kubectl(
            "rollout", "status", f"deployment/{NAME}", "-n", NAMESPACE, "--timeout=120s"
        )
        pods = client.CoreV1Api(admin).list_namespaced_pod(
            NAMESPACE, label_selector="app.kubernetes.io/component=operator"
        )
        assert len(pods.items) == 2
        assert {p.spec.node_name for p in pods.items} <= {n.name for n in DEFAULT_NODES}
        assert peering_owner(cluster) == "other"  # kubectl's, not a Helm release's

        # The ServiceAccount holds the same cluster-wide role as with Helm.
        token = service_account_token(admin, NAMESPACE, NAME)
        with api_client(cluster, token) as as_operator:
            custom = client.CustomObjectsApi(as_operator)
            wait_until(
                lambda: custom.list_cluster_custom_object(
                    "modeldeploy.dev", "v1alpha1", "modeldeployments"
                ),
                30,
                "the ClusterRoleBinding to apply",
            )
    finally:
        cluster.kubectl("delete", "-f", deploy, "--wait=true", "--ignore-not-found")

    wait_until(lambda: namespace_gone(cluster), 120, f"namespace {NAMESPACE} to be deleted")
    left = labelled(cluster, NAMESPACED_KINDS + CLUSTER_KINDS, NAME)
    assert not left, left
    assert crds_present(cluster)
    done = cluster.kubectl("get", "clusterroles,clusterrolebindings", "-o", "json")
    names = {item["metadata"]["name"] for item in json.loads(done.stdout)["items"]}
    assert NAME not in names
