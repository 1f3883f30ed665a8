"""Pure builders of the optional NetworkPolicies of a ModelDeployment (`--network-policies`).

Two policies, both owned by the ModelDeployment like its pods and Services:
- `<name>-head` isolates the Ray head. Its workers reach every port (Ray's raylet, object
  manager and worker ports are picked at start, so they cannot be listed); the operator's pods
  reach the ports it and an admin use (GCS, dashboard, Ray client, metrics); the namespace's
  gateway reads the Serve API on the dashboard port; Serve's HTTP port is open to the namespace,
  or only to the gateway when the gateway enforces API keys.
- `<name>-endpoint`, only when `spec.endpoint.apiKeysSecretRef` is set, isolates every Serve
  proxy (head and workers): port 8000 from the gateway only, so nobody bypasses the keys by
  calling the model's Service, and every port from the deployment's own Ray pods.
The metrics port stays open to any source on both: it holds no secret, and Prometheus usually
runs in a namespace of its own. Policies are additive: what one allows, the other cannot take
away, so the head policy never opens Serve's port wider than the endpoint policy.

Enforcement is the CNI's: a cluster whose network plugin ignores NetworkPolicy accepts them and
enforces nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..common import names
from ..common.hashing import hash_of, stamped
from .gateway import GATEWAY_COMPONENT
from .owner import Owner

POLICY_COMPONENT = "network-policy"
# The gateway Deployment's pod labels that select it (gateway.py builds them the same way).
GATEWAY_POD_LABELS: Mapping[str, str] = {
    "app.kubernetes.io/name": "modeldeploy",
    names.COMPONENT_LABEL: GATEWAY_COMPONENT,
}
# What the operator (and an admin through it) calls on the head: the head Service's ports.
OPERATOR_PORTS = (names.GCS_PORT, names.DASHBOARD_PORT, names.CLIENT_PORT, names.METRICS_PORT)


@dataclass(frozen=True)
class OperatorPeers:
    """Where the operator's pods are: namespaces by label and pods by label (matchLabels)."""

    namespace_labels: Mapping[str, str]
    pod_labels: Mapping[str, str]

    def __post_init__(self) -> None:
        # Empty selectors select every namespace or pod: the policy would allow everyone.
        if not self.namespace_labels:
            raise ValueError("--operator-namespace-selector: at least one label=value is needed")
        if not self.pod_labels:
            raise ValueError("--operator-pod-selector: at least one label=value is needed")


@dataclass(frozen=True)
class PolicyPlan:
    """What to do to bring the live policies to the desired ones."""

    create: tuple[dict[str, Any], ...] = ()
    replace: tuple[tuple[dict[str, Any], dict[str, Any]], ...] = ()  # (desired, live)
    delete: tuple[str, ...] = ()


def parse_selector(text: str, flag: str) -> dict[str, str]:
    """`k=v,k2=v2` (what `kubectl -l` takes, equality only) as matchLabels; ValueError naming
    the flag and the bad part."""
    labels: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or "=" in value or "!" in key:
            raise ValueError(f"{flag}: expected label=value, got {part!r}")
        labels[key] = value
    return labels


def _port(port: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port}


def _pods(labels: Mapping[str, str]) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": dict(labels)}}


def _operator(peers: OperatorPeers) -> dict[str, Any]:
    # Both selectors in one peer: pods with these labels in namespaces with those (AND).
    return {
        "namespaceSelector": {"matchLabels": dict(peers.namespace_labels)},
        "podSelector": {"matchLabels": dict(peers.pod_labels)},
    }


def _policy(
    owner: Owner, name: str, selected: Mapping[str, str], ingress: list[Any]
) -> dict[str, Any]:
    return stamped(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": name,
                "namespace": owner.namespace,
                "labels": names.labels(owner.name, POLICY_COMPONENT),
                "ownerReferences": [owner.reference()],
            },
            "spec": {
                "podSelector": {"matchLabels": dict(selected)},
                "policyTypes": ["Ingress"],
                "ingress": ingress,
            },
        }
    )


def keys_enforced(owner: Owner) -> bool:
    """The gateway checks API keys for this model: its Serve port must be the gateway's only."""
    return owner.spec.endpoint.api_keys_secret_ref is not None


def build_head_policy(owner: Owner, peers: OperatorPeers) -> dict[str, Any]:
    """`<name>-head`: the head's ports for its workers, the operator and the gateway."""
    # An empty podSelector without namespaceSelector: every pod of this namespace.
    serve_from = _pods(GATEWAY_POD_LABELS) if keys_enforced(owner) else {"podSelector": {}}
    ingress = [
        {"from": [_pods(names.selector(owner.name, names.WORKER))]},
        {"from": [_operator(peers)], "ports": [_port(p) for p in OPERATOR_PORTS]},
        {"from": [_pods(GATEWAY_POD_LABELS)], "ports": [_port(names.DASHBOARD_PORT)]},
        {"from": [serve_from], "ports": [_port(names.SERVE_PORT)]},
        {"ports": [_port(names.METRICS_PORT)]},
    ]
    selected = names.selector(owner.name, names.HEAD)
    return _policy(owner, names.head_network_policy(owner.name), selected, ingress)


def build_endpoint_policy(owner: Owner) -> dict[str, Any] | None:
    """`<name>-endpoint` when API keys are enforced: Serve's port from the gateway only."""
    if not keys_enforced(owner):
        return None
    ingress = [
        {"from": [_pods(GATEWAY_POD_LABELS)], "ports": [_port(names.SERVE_PORT)]},
        # Ray itself: the head's Serve controller and the other workers, on any port.
        {"from": [_pods({names.NAME_LABEL: owner.name})]},
        {"ports": [_port(names.METRICS_PORT)]},
    ]
    selected = {names.NAME_LABEL: owner.name, names.PROXY_LABEL: "true"}
    return _policy(owner, names.endpoint_network_policy(owner.name), selected, ingress)


def build_network_policies(owner: Owner, peers: OperatorPeers | None) -> list[dict[str, Any]]:
    """Every policy the ModelDeployment should have; none when the feature is off (None)."""
    if peers is None:
        return []
    endpoint = build_endpoint_policy(owner)
    return [build_head_policy(owner, peers)] + ([endpoint] if endpoint else [])


def plan_policies(desired: Sequence[dict[str, Any]], live: Sequence[dict[str, Any]]) -> PolicyPlan:
    """Create the missing, replace the drifted (hash differs), delete the ones not desired."""
    by_name = {p["metadata"]["name"]: p for p in live}
    wanted = {p["metadata"]["name"] for p in desired}
    create = tuple(p for p in desired if p["metadata"]["name"] not in by_name)
    replace = tuple(
        (p, by_name[p["metadata"]["name"]])
        for p in desired
        if p["metadata"]["name"] in by_name
        and hash_of(by_name[p["metadata"]["name"]]) != hash_of(p)
    )
    delete = tuple(
        sorted(
            name
            for name, p in by_name.items()
            if name not in wanted and not p["metadata"].get("deletionTimestamp")
        )
    )
    return PolicyPlan(create=create, replace=replace, delete=delete)
