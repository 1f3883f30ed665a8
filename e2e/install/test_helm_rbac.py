"""`helm install` on the real control plane, and the operator confined to the chart's RBAC.

The lifecycle tests below are the operator suite's own (e2e/lifecycle/test_operator_faults.py),
collected here again: this package's `start_operator` fixture runs the operator with a token of
the chart's ServiceAccount, so each Kubernetes call they cause must be allowed by the chart's
roles, and anything the roles forgot fails them.
"""

from __future__ import annotations

import pytest
from cluster.localcluster import DEFAULT_NODES, LocalCluster, wait_until
from kubernetes import client
from kubernetes.client.rest import ApiException
from lifecycle import test_networkpolicies as networkpolicies
from lifecycle import test_operator_faults as lifecycle

from .conftest import Release
from .release import CRDS, peering_owner


def operator_pods(admin: client.ApiClient, release: Release) -> list[client.V1Pod]:
    selector = f"app.kubernetes.io/instance={release.name},app.kubernetes.io/component=operator"
    core = client.CoreV1Api(admin)
    return list(core.list_namespaced_pod(release.namespace, label_selector=selector).items)


def test_install_establishes_crds_and_runs_the_operator(
    cluster: LocalCluster, admin: client.ApiClient, release: Release
) -> None:
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{c}" for c in CRDS]
    )
    # helm --wait returned: the Deployment is available. Both replicas run on kwok's nodes.
    pods = operator_pods(admin, release)
    assert len(pods) == 2
    for pod in pods:
        ready = {c.type: c.status for c in pod.status.conditions or []}
        assert pod.status.phase == "Running" and ready.get("Ready") == "True", pod.status
        assert pod.spec.node_name in {node.name for node in DEFAULT_NODES}
        assert pod.spec.service_account_name == release.service_account
    assert peering_owner(cluster) == release.name
    assert "http://NAME.NAMESPACE.svc:8000/v1" in release.notes
    assert "from openai import OpenAI" in release.notes


def evict(core: client.CoreV1Api, pod: client.V1Pod) -> int:
    """Ask the Eviction API (what `kubectl drain` uses) to remove a pod; the HTTP status."""
    eviction = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace)
    )
    try:
        core.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace, eviction)
    except ApiException as exc:
        return int(exc.status)
    return 201


def test_drain_never_takes_both_replicas(admin: client.ApiClient, release: Release) -> None:
    policy = client.PolicyV1Api(admin)

    def disruptions_allowed() -> int:
        pdb = policy.read_namespaced_pod_disruption_budget(
            release.service_account, release.namespace
        )
        return int(pdb.status.disruptions_allowed or 0)

    wait_until(lambda: disruptions_allowed() == 1, 60, "the PDB to allow one disruption")
    core = client.CoreV1Api(admin)
    first, second = operator_pods(admin, release)[:2]
    assert evict(core, first) == 201
    # Until the replacement is Ready, the other replica is the last one: eviction refused.
    # kwok readies pods at once, so the replacement may already count; then it must be Ready.
    if evict(core, second) != 429:
        others = [
            p
            for p in operator_pods(admin, release)
            if p.metadata.name not in (first.metadata.name, second.metadata.name)
        ]
        ready = [
            p
            for p in others
            if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]
        assert ready, "the second replica was evicted while no replacement was Ready"
    wait_until(lambda: disruptions_allowed() == 1, 60, "the replacement replica to be Ready")


def status_of(call: object) -> int:
    """The HTTP status a client call ends with."""
    try:
        call()  # type: ignore[operator]
    except ApiException as exc:
        return int(exc.status)
    return 200


def test_calls_outside_the_role_are_denied(
    as_operator: client.ApiClient, namespace: str, release: Release
) -> None:
    core = client.CoreV1Api(as_operator)
    apps = client.AppsV1Api(as_operator)
    custom = client.CustomObjectsApi(as_operator)
    networking = client.NetworkingV1Api(as_operator)
    denied = {
        "list secrets, all namespaces": lambda: core.list_secret_for_all_namespaces(),
        "list secrets in a namespace": lambda: core.list_namespaced_secret(namespace),
        "delete a node": lambda: core.delete_node(DEFAULT_NODES[0].name),
        "list nodes": lambda: core.list_node(),
        "list Deployments": lambda: apps.list_namespaced_deployment(namespace),
        "list ConfigMaps": lambda: core.list_namespaced_config_map(namespace),
        "patch a NetworkPolicy": lambda: networking.patch_namespaced_network_policy(
            "x", namespace, {}
        ),
        "patch a Service": lambda: core.patch_namespaced_service("x", namespace, {}),
        "delete a ModelDeployment": lambda: custom.delete_namespaced_custom_object(
            "modeldeploy.dev", "v1alpha1", namespace, "modeldeployments", "x"
        ),
        "read its own ServiceAccount's namespace": lambda: core.read_namespace(release.namespace),
    }
    statuses = {what: status_of(call) for what, call in denied.items()}
    assert statuses == dict.fromkeys(denied, 403)
    # What it may do answers normally (404: allowed, nothing there).
    assert status_of(lambda: core.read_namespaced_secret("absent", namespace)) == 404
    assert status_of(lambda: core.list_namespaced_pod(namespace)) == 200
    assert status_of(lambda: networking.list_namespaced_network_policy(namespace)) == 200


@pytest.mark.parametrize("verb", ["get", "list", "watch", "create", "update", "patch", "delete"])
def test_operator_cannot_touch_rbac_or_escalate(
    as_operator: client.ApiClient, namespace: str, verb: str
) -> None:
    """No verb at all on roles and bindings: the operator cannot grant itself more."""
    review = client.AuthorizationV1Api(as_operator).create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    group="rbac.authorization.k8s.io",
                    resource="rolebindings",
                    verb=verb,
                    namespace=namespace,
                )
            )
        )
    )
    assert review.status.allowed is False


# The operator suite's lifecycle, as the chart's ServiceAccount. Reconciling without Ray:
# children with GPU requests on GPU nodes, status and events, the scale subresource, garbage
# collection on delete; drift repair; Secret reference checks; unschedulable GPU requests; the
# optional NetworkPolicies kept, repaired and removed (the role's networkpolicies rule).
test_children_status_and_garbage_collection = lifecycle.test_children_status_and_garbage_collection
test_drift_is_repaired = lifecycle.test_drift_is_repaired
test_invalid_reference_creates_nothing = lifecycle.test_invalid_reference_creates_nothing
test_insufficient_gpu_carries_scheduler_message = (
    lifecycle.test_insufficient_gpu_carries_scheduler_message
)
test_policies_follow_the_spec_and_are_repaired = (
    networkpolicies.test_policies_follow_the_spec_and_are_repaired
)
test_policies_left_from_a_run_with_the_flag_are_removed_without_it = (
    networkpolicies.test_policies_left_from_a_run_with_the_flag_are_removed_without_it
)
