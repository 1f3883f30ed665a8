"""Helm releases and kubectl installs of modeldeploy on the local cluster, and what they leave.

Helm's rule, which the tests hold the chart to: an uninstall removes every object the release
created except CustomResourceDefinitions (from the chart's crds/ folder, never deleted, so that
users' ModelDeployments survive an uninstall).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from cluster.localcluster import SA_ISSUER, LocalCluster, kubeconfig_text, wait_until
from kubernetes import client

from .chart import CHART, PEERING_NAME

# Every kind the chart or deploy/ creates, by scope.
NAMESPACED_KINDS = (
    "deployments.apps",
    "replicasets.apps",
    "pods",
    "services",
    "serviceaccounts",
    "configmaps",
    "secrets",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "poddisruptionbudgets.policy",
    "kopfpeerings.kopf.dev",
)
CLUSTER_KINDS = (
    "clusterroles.rbac.authorization.k8s.io",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "clusterkopfpeerings.kopf.dev",
)
# What every namespace has, put there by the controller-manager, not by an install.
NAMESPACE_DEFAULTS = {"serviceaccount/default", "configmap/kube-root-ca.crt"}
CRDS = ("modeldeployments.modeldeploy.dev", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")


def helm_install(
    cluster: LocalCluster, release: str, namespace: str, *sets: str, upgrade: bool = False
) -> str:
    """Install (or upgrade) the chart and wait until its Deployment is available; the NOTES."""
    verb = ("upgrade",) if upgrade else ("install", "--create-namespace")
    done = cluster.helm(
        *verb, release, str(CHART), "-n", namespace, "--wait", "--timeout", "3m", *sets
    )
    return done.stdout


def helm_uninstall(cluster: LocalCluster, release: str, namespace: str) -> None:
    # Foreground cascade: the Deployment's ReplicaSets and pods are gone when this returns.
    cluster.helm(
        "uninstall", release, "-n", namespace, "--wait", "--cascade=foreground", "--timeout", "2m"
    )


def service_account_token(admin: client.ApiClient, namespace: str, name: str) -> str:
    """A short-lived token of the ServiceAccount from the TokenRequest API, as a pod would get."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[SA_ISSUER], expiration_seconds=3600)
    )
    response = client.CoreV1Api(admin).create_namespaced_service_account_token(
        name, namespace, request
    )
    token: str = response.status.token
    return token


def write_kubeconfig(cluster: LocalCluster, token: str, path: Path) -> Path:
    path.write_text(kubeconfig_text(cluster.server, cluster.ca_file, token, name="as-operator"))
    path.chmod(0o600)
    return path


def objects(cluster: LocalCluster, kinds: Iterable[str], namespace: str | None) -> set[str]:
    """`kind/name` of every object of those kinds (cluster-scoped when namespace is None)."""
    scope = ["-n", namespace] if namespace else []
    done = cluster.kubectl("get", ",".join(kinds), *scope, "-o", "json")
    return {
        f"{item['kind'].lower()}/{item['metadata']['name']}"
        for item in json.loads(done.stdout)["items"]
    }


def labelled(cluster: LocalCluster, kinds: Iterable[str], release: str) -> set[str]:
    """Objects in any namespace carrying the release's instance label."""
    selector = f"app.kubernetes.io/instance={release}"
    done = cluster.kubectl("get", ",".join(kinds), "-A", "-l", selector, "-o", "json")
    return {
        f"{item['kind'].lower()}/{item['metadata'].get('namespace', '')}/{item['metadata']['name']}"
        for item in json.loads(done.stdout)["items"]
    }


def wait_namespace_empty(cluster: LocalCluster, namespace: str) -> None:
    """Nothing but the namespace's defaults (pods finish terminating in the background)."""

    def empty() -> bool:
        return objects(cluster, NAMESPACED_KINDS, namespace) <= NAMESPACE_DEFAULTS

    try:
        wait_until(empty, 60, f"namespace {namespace} to hold nothing of the install")
    except TimeoutError:
        left = objects(cluster, NAMESPACED_KINDS, namespace) - NAMESPACE_DEFAULTS
        raise AssertionError(f"left behind in {namespace}: {sorted(left)}") from None


def crds_present(cluster: LocalCluster) -> bool:
    done = cluster.kubectl("get", "crd", *CRDS, "-o", "name", check=False)
    return done.returncode == 0 and len(done.stdout.split()) == len(CRDS)


def peering_owner(cluster: LocalCluster) -> str | None:
    """Who manages the ClusterKopfPeering: a Helm release's name, "other", or None (absent)."""
    done = cluster.kubectl(
        "get", "clusterkopfpeering", PEERING_NAME, "-o", "json", "--ignore-not-found", check=False
    )
    if "doesn't have a resource type" in done.stderr:
        return None  # the peering CRD is not installed yet
    if done.returncode != 0:
        raise AssertionError(f"kubectl get clusterkopfpeering: {done.stderr}")
    if not done.stdout.strip():
        return None
    annotations = json.loads(done.stdout)["metadata"].get("annotations") or {}
    return str(annotations.get("meta.helm.sh/release-name", "other"))
