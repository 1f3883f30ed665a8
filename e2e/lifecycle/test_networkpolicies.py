"""The optional NetworkPolicies on the real apiserver: built, owned, repaired, removed.

The local control plane runs no pod network, so nothing enforces them here: these tests check
the objects the operator keeps (selectors, ports, owners), which is what a NetworkPolicy-aware
CNI would enforce.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cluster.localcluster import wait_until
from kubernetes import client

from .conftest import ModelDeployments
from .harness import OperatorProcess
from .test_operator_faults import GPU_SPEC, wait_children

OPERATOR_NAMESPACE = {"kubernetes.io/metadata.name": "modeldeploy-system"}
OPERATOR_PODS = {"app.kubernetes.io/name": "modeldeploy", "app.kubernetes.io/component": "operator"}
FLAGS = (
    "--network-policies",
    "--operator-namespace-selector=kubernetes.io/metadata.name=modeldeploy-system",
    "--operator-pod-selector=app.kubernetes.io/name=modeldeploy,app.kubernetes.io/component=operator",
)
GATEWAY_PODS = {"app.kubernetes.io/name": "modeldeploy", "app.kubernetes.io/component": "gateway"}
SPEC: dict[str, Any] = {
    **GPU_SPEC,
    "scaling": {"mode": "external", "replicas": 1, "maxReplicas": 1},
}
KEYS_SECRET_VALUE = "ck-e2e-netpol-client-key"


def policies(mds: ModelDeployments, name: str) -> dict[str, Any]:
    """The ModelDeployment's NetworkPolicies by name, as API dicts."""
    api = client.NetworkingV1Api(mds.core.api_client)
    found = api.list_namespaced_network_policy(
        mds.namespace, label_selector=f"modeldeploy.dev/name={name}"
    )
    return {p.metadata.name: mds.core.api_client.sanitize_for_serialization(p) for p in found.items}


def wait_policies(mds: ModelDeployments, name: str, expected: set[str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def settled() -> bool:
        seen.clear()
        seen.update(policies(mds, name))
        return set(seen) == expected

    wait_until(settled, 90, f"NetworkPolicies {sorted(expected)} of {name}", interval=0.5)
    return seen


def rules(policy: dict[str, Any]) -> list[tuple[list[Any] | None, set[int] | None]]:
    """(from, ports) of each ingress rule; None: any source or any port."""
    return [
        (
            rule.get("from"),
            {p["port"] for p in rule["ports"]} if rule.get("ports") is not None else None,
        )
        for rule in policy["spec"].get("ingress") or []
    ]


def serve_sources(policy: dict[str, Any]) -> list[Any]:
    return [peers for peers, ports in rules(policy) if ports is None or 8000 in ports]


def test_policies_follow_the_spec_and_are_repaired(
    start_operator: Callable[..., OperatorProcess], mds: ModelDeployments
) -> None:
    start_operator(flags=FLAGS)
    mds.create("guarded", SPEC)
    wait_children(mds, "guarded", workers=1)
    head = wait_policies(mds, "guarded", {"guarded-head"})["guarded-head"]

    md_uid = mds.get("guarded")["metadata"]["uid"]
    [owner] = head["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("ModelDeployment", md_uid, True)
    assert head["spec"]["podSelector"] == {
        "matchLabels": {
            "modeldeploy.dev/name": "guarded",
            "app.kubernetes.io/component": "ray-head",
        }
    }
    assert head["spec"]["policyTypes"] == ["Ingress"]
    workers = {
        "podSelector": {
            "matchLabels": {
                "modeldeploy.dev/name": "guarded",
                "app.kubernetes.io/component": "ray-worker",
            }
        }
    }
    operator = {
        "namespaceSelector": {"matchLabels": OPERATOR_NAMESPACE},
        "podSelector": {"matchLabels": OPERATOR_PODS},
    }
    assert rules(head) == [
        ([workers], None),
        ([operator], {6379, 8265, 10001, 8080}),
        ([{"podSelector": {"matchLabels": GATEWAY_PODS}}], {8265}),
        ([{"podSelector": {}}], {8000}),
        (None, {8080}),
    ]
    # The selectors pick the pods the operator made: the head, and its worker.
    head_pod = mds.pods("guarded", "ray-head")[0]
    assert head["spec"]["podSelector"]["matchLabels"].items() <= head_pod.metadata.labels.items()
    worker_pod = mds.pods("guarded", "ray-worker")[0]
    assert workers["podSelector"]["matchLabels"].items() <= worker_pod.metadata.labels.items()

    # API keys: Serve's port becomes the gateway's only, on the head and on every proxy.
    mds.core.create_namespaced_secret(
        mds.namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="netpol-keys"),
            string_data={"api-keys": KEYS_SECRET_VALUE},
        ),
    )
    mds.patch_spec("guarded", {"endpoint": {"apiKeysSecretRef": {"name": "netpol-keys"}}})
    gateway = [{"podSelector": {"matchLabels": GATEWAY_PODS}}]

    def guarded() -> dict[str, Any] | None:
        found = policies(mds, "guarded")
        if set(found) != {"guarded-head", "guarded-endpoint"}:
            return None
        head_serve = [s for s in serve_sources(found["guarded-head"]) if s != [workers]]
        return found if head_serve == [gateway] else None

    found = wait_until(guarded, 90, "the gateway-only policies", interval=0.5)
    endpoint = found["guarded-endpoint"]
    assert endpoint["spec"]["podSelector"] == {
        "matchLabels": {"modeldeploy.dev/name": "guarded", "modeldeploy.dev/serve-proxy": "true"}
    }
    proxies = [
        p for p in mds.pods("guarded") if p.metadata.labels.get("modeldeploy.dev/serve-proxy")
    ]
    assert len(proxies) == 2  # head and worker both run a Serve proxy
    assert rules(endpoint)[0] == (gateway, {8000})
    assert endpoint["metadata"]["ownerReferences"][0]["uid"] == md_uid

    # Drift: a deleted policy comes back, one edited by hand is put back.
    networking = client.NetworkingV1Api(mds.core.api_client)
    networking.delete_namespaced_network_policy("guarded-endpoint", mds.namespace)
    time.sleep(1)
    wait_policies(mds, "guarded", {"guarded-head", "guarded-endpoint"})
    networking.patch_namespaced_network_policy(
        "guarded-head",
        mds.namespace,
        [
            {"op": "replace", "path": "/spec/ingress", "value": [{}]},
            {
                "op": "replace",
                "path": "/metadata/annotations/modeldeploy.dev~1spec-hash",
                "value": "edited-by-hand",
            },
        ],
    )
    wait_until(
        lambda: len(rules(policies(mds, "guarded")["guarded-head"])) == 5,
        60,
        "the edited head policy restored",
    )
    reasons = {(e.reason, e.message) for e in mds.events("guarded")}
    assert ("Created", "created NetworkPolicy guarded-endpoint") in reasons, reasons
    assert ("Updated", "updated NetworkPolicy guarded-head") in reasons, reasons

    # Keys dropped: the endpoint policy goes, Serve's port is the namespace's again.
    mds.patch_spec("guarded", {"endpoint": {"apiKeysSecretRef": None}})
    wait_policies(mds, "guarded", {"guarded-head"})
    wait_until(
        lambda: (
            [{"podSelector": {}}]
            in serve_sources(policies(mds, "guarded").get("guarded-head") or {"spec": {}})
        ),
        60,
        "Serve's port open to the namespace again",
    )

    # Garbage collection with the ModelDeployment.
    mds.delete("guarded")
    wait_until(lambda: not policies(mds, "guarded"), 90, "garbage collection of the policies")


def test_policies_left_from_a_run_with_the_flag_are_removed_without_it(
    start_operator: Callable[..., OperatorProcess], mds: ModelDeployments
) -> None:
    operator = start_operator(flags=FLAGS)
    mds.create("formerly", SPEC)
    wait_policies(mds, "formerly", {"formerly-head"})
    operator.stop()

    start_operator()
    wait_policies(mds, "formerly", set())
    assert any(
        (e.reason, e.message) == ("Deleted", "deleted NetworkPolicy formerly-head")
        for e in mds.events("formerly")
    )
    # Off means off: nothing is created again on later resyncs.
    time.sleep(5)
    assert policies(mds, "formerly") == {}
    wait_children(mds, "formerly", workers=1)


def test_bad_selector_stops_the_operator_at_start(
    start_operator: Callable[..., OperatorProcess], tmp_path: Path
) -> None:
    try:
        start_operator(flags=("--network-policies", "--operator-namespace-selector=a=b"))
    except RuntimeError as exc:
        message = str(exc)
    else:
        raise AssertionError("the operator started without --operator-pod-selector")
    assert "exited with 2" in message
    log = (tmp_path / "operator.log").read_text()
    assert "--operator-pod-selector: at least one label=value is needed" in log
    assert "Traceback" not in log
