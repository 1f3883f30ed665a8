"""Pure builders and planner of the optional NetworkPolicies."""

from __future__ import annotations

import argparse
import copy
from typing import Any

import pytest

from modeldeploy_operator.api import ModelDeployment
from modeldeploy_operator.builders.gateway import (
    build_gateway_config,
    build_gateway_deployment,
    cluster_location,
    mounted_secret,
)
from modeldeploy_operator.builders.networkpolicies import (
    OperatorPeers,
    build_endpoint_policy,
    build_head_policy,
    build_network_policies,
    parse_selector,
    plan_policies,
)
from modeldeploy_operator.builders.owner import Owner
from modeldeploy_operator.builders.serving_config import build_serving_config
from modeldeploy_operator.common.hashing import hash_of
from modeldeploy_operator.edge.operator_main import add_arguments, operator_peers
from tests.operator_factories import make_md, make_owner

PEERS = OperatorPeers(
    namespace_labels={"kubernetes.io/metadata.name": "modeldeploy-system"},
    pod_labels={"app.kubernetes.io/name": "modeldeploy", "app.kubernetes.io/component": "operator"},
)
KEYS = {"endpoint": {"apiKeysSecretRef": {"name": "team-keys"}}}
OPERATOR_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "modeldeploy-system"}},
    "podSelector": {
        "matchLabels": {
            "app.kubernetes.io/name": "modeldeploy",
            "app.kubernetes.io/component": "operator",
        }
    },
}
GATEWAY_PEER = {
    "podSelector": {
        "matchLabels": {
            "app.kubernetes.io/name": "modeldeploy",
            "app.kubernetes.io/component": "gateway",
        }
    }
}
WORKER_PEER = {
    "podSelector": {
        "matchLabels": {"modeldeploy.dev/name": "llm", "app.kubernetes.io/component": "ray-worker"}
    }
}


def ports(rule: dict[str, Any]) -> set[int] | None:
    """A rule's TCP ports; None when it allows every port."""
    if "ports" not in rule:
        return None
    assert all(p["protocol"] == "TCP" for p in rule["ports"])
    return {p["port"] for p in rule["ports"]}


def allowed(policy: dict[str, Any]) -> list[tuple[list[Any] | None, set[int] | None]]:
    """(peers, ports) per ingress rule; None peers: any source."""
    return [(rule.get("from"), ports(rule)) for rule in policy["spec"]["ingress"]]


def test_head_policy_selects_the_head_and_isolates_ingress(owner: Owner) -> None:
    policy = build_head_policy(owner, PEERS)
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["kind"] == "NetworkPolicy"
    assert policy["metadata"]["name"] == "llm-head"
    assert policy["metadata"]["namespace"] == "team"
    assert policy["spec"]["podSelector"] == {
        "matchLabels": {"modeldeploy.dev/name": "llm", "app.kubernetes.io/component": "ray-head"}
    }
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert "egress" not in policy["spec"]


def test_head_policy_ports_by_peer(owner: Owner) -> None:
    assert allowed(build_head_policy(owner, PEERS)) == [
        # Ray's own ports are dynamic: the workers reach them all.
        ([WORKER_PEER], None),
        ([OPERATOR_PEER], {6379, 8265, 10001, 8080}),
        ([GATEWAY_PEER], {8265}),
        # Without API keys, Serve's port is the namespace's (an empty podSelector).
        ([{"podSelector": {}}], {8000}),
        (None, {8080}),
    ]


def test_head_policy_never_opens_gcs_or_dashboard_to_the_namespace(owner: Owner) -> None:
    for keys in ({}, KEYS):
        policy = build_head_policy(make_owner(keys), PEERS)
        for peers, opened in allowed(policy):
            if opened is None or opened & {6379, 8265, 10001}:
                assert peers is not None and {"podSelector": {}} not in peers, (keys, peers)
                assert None not in peers


def test_with_api_keys_serve_port_is_the_gateways_only() -> None:
    owner = make_owner(KEYS)
    head = build_head_policy(owner, PEERS)
    assert ([GATEWAY_PEER], {8000}) in allowed(head)
    assert not [
        peers
        for peers, opened in allowed(head)
        if opened and 8000 in opened and peers != [GATEWAY_PEER]
    ]

    endpoint = build_endpoint_policy(owner)
    assert endpoint is not None
    assert endpoint["metadata"]["name"] == "llm-endpoint"
    # Every Serve proxy: the pods the endpoint Service sends to (head and workers).
    assert endpoint["spec"]["podSelector"] == {
        "matchLabels": {"modeldeploy.dev/name": "llm", "modeldeploy.dev/serve-proxy": "true"}
    }
    assert endpoint["spec"]["policyTypes"] == ["Ingress"]
    assert allowed(endpoint) == [
        ([GATEWAY_PEER], {8000}),
        ([{"podSelector": {"matchLabels": {"modeldeploy.dev/name": "llm"}}}], None),
        (None, {8080}),
    ]


def test_endpoint_policy_only_with_api_keys(owner: Owner) -> None:
    assert build_endpoint_policy(owner) is None
    overflow_only = make_owner(
        {"overflow": {"baseUrl": "https://api.example.com/v1", "model": "gpt-4o-mini"}}
    )
    assert build_endpoint_policy(overflow_only) is None


def test_policies_are_owned_labelled_and_stamped() -> None:
    owner = make_owner(KEYS)
    for policy in build_network_policies(owner, PEERS):
        metadata = policy["metadata"]
        assert metadata["ownerReferences"] == [owner.reference()]
        assert metadata["labels"]["modeldeploy.dev/name"] == "llm"
        assert metadata["labels"]["app.kubernetes.io/managed-by"] == "modeldeploy"
        assert hash_of(policy)


def test_hash_follows_the_spec_and_the_peers(owner: Owner) -> None:
    same = build_head_policy(make_owner(), PEERS)
    assert hash_of(build_head_policy(owner, PEERS)) == hash_of(same)
    assert hash_of(build_head_policy(make_owner(KEYS), PEERS)) != hash_of(same)
    other = OperatorPeers({"kubernetes.io/metadata.name": "ops"}, dict(PEERS.pod_labels))
    assert hash_of(build_head_policy(owner, other)) != hash_of(same)


def test_disabled_builds_none(owner: Owner) -> None:
    assert build_network_policies(owner, None) == []
    assert build_network_policies(make_owner(KEYS), None) == []


def test_enabled_builds_head_and_endpoint_by_keys(owner: Owner) -> None:
    assert [p["metadata"]["name"] for p in build_network_policies(owner, PEERS)] == ["llm-head"]
    names = [p["metadata"]["name"] for p in build_network_policies(make_owner(KEYS), PEERS)]
    assert names == ["llm-head", "llm-endpoint"]


def test_gateway_peer_matches_the_gateway_pods() -> None:
    md: ModelDeployment = make_md(KEYS)
    md.metadata["uid"] = "uid-1"
    config = build_gateway_config(
        [(md, build_serving_config(md))], cluster_location("team"), mounted_secret
    )
    deployment = build_gateway_deployment("team", [md], config)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = GATEWAY_PEER["podSelector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()


# -- the planner -------------------------------------------------------------------------------
def live(policy: dict[str, Any]) -> dict[str, Any]:
    stored = copy.deepcopy(policy)
    stored["metadata"]["resourceVersion"] = "7"
    return stored


def names_of(policies: tuple[dict[str, Any], ...]) -> list[str]:
    return [p["metadata"]["name"] for p in policies]


def test_plan_creates_what_is_missing() -> None:
    desired = build_network_policies(make_owner(KEYS), PEERS)
    plan = plan_policies(desired, [])
    assert names_of(plan.create) == ["llm-head", "llm-endpoint"]
    assert plan.replace == () and plan.delete == ()


def test_plan_leaves_current_policies_alone() -> None:
    desired = build_network_policies(make_owner(KEYS), PEERS)
    plan = plan_policies(desired, [live(p) for p in desired])
    assert plan.create == () and plan.replace == () and plan.delete == ()


def test_plan_replaces_a_drifted_policy(owner: Owner) -> None:
    [desired] = build_network_policies(owner, PEERS)
    edited = live(desired)
    edited["spec"]["ingress"] = [{}]  # allow everything
    edited["metadata"]["annotations"]["modeldeploy.dev/spec-hash"] = "edited-by-hand"
    plan = plan_policies([desired], [edited])
    assert plan.create == () and plan.delete == ()
    [(new, old)] = plan.replace
    assert new is desired and old is edited


def test_plan_removes_the_endpoint_policy_when_keys_are_dropped() -> None:
    before = build_network_policies(make_owner(KEYS), PEERS)
    after = build_network_policies(make_owner(), PEERS)
    plan = plan_policies(after, [live(p) for p in before])
    assert plan.delete == ("llm-endpoint",)
    # The head policy opens Serve's port to the namespace again.
    assert names_of(tuple(p for p, _ in plan.replace)) == ["llm-head"]
    assert plan.create == ()


def test_plan_removes_every_policy_when_disabled() -> None:
    before = build_network_policies(make_owner(KEYS), PEERS)
    plan = plan_policies(build_network_policies(make_owner(KEYS), None), [live(p) for p in before])
    assert plan.delete == ("llm-endpoint", "llm-head")
    assert plan.create == () and plan.replace == ()


def test_plan_skips_a_policy_already_being_deleted() -> None:
    [head] = build_network_policies(make_owner(), PEERS)
    going = live(head)
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert plan_policies([], [going]).delete == ()


# -- flags ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=b", {"a": "b"}),
        (
            "app.kubernetes.io/name=modeldeploy, app.kubernetes.io/component=operator",
            {
                "app.kubernetes.io/name": "modeldeploy",
                "app.kubernetes.io/component": "operator",
            },
        ),
        ("", {}),
    ],
)
def test_parse_selector(text: str, expected: dict[str, str]) -> None:
    assert parse_selector(text, "--flag") == expected


@pytest.mark.parametrize("text", ["a", "=b", "a!=b", "a==b", "a=b,c"])
def test_parse_selector_names_the_flag_and_the_part(text: str) -> None:
    with pytest.raises(ValueError, match="--operator-pod-selector: expected label=value"):
        parse_selector(text, "--operator-pod-selector")


def parse(*argv: str, environ: dict[str, str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    with pytest.MonkeyPatch.context() as patch:
        for key in (
            "MODELDEPLOY_NETWORK_POLICIES",
            "MODELDEPLOY_OPERATOR_NAMESPACE_SELECTOR",
            "MODELDEPLOY_OPERATOR_POD_SELECTOR",
        ):
            patch.delenv(key, raising=False)
        for key, value in (environ or {}).items():
            patch.setenv(key, value)
        add_arguments(parser)
        return parser.parse_args(list(argv))


def test_flag_off_by_default_means_no_policies() -> None:
    assert operator_peers(parse()) is None
    assert operator_peers(parse("--operator-pod-selector=a=b")) is None


def test_flag_on_needs_both_selectors() -> None:
    args = parse(
        "--network-policies",
        "--operator-namespace-selector=kubernetes.io/metadata.name=ops",
        "--operator-pod-selector=app=op",
    )
    assert operator_peers(args) == OperatorPeers(
        {"kubernetes.io/metadata.name": "ops"}, {"app": "op"}
    )
    with pytest.raises(ValueError, match="--operator-namespace-selector"):
        operator_peers(parse("--network-policies", "--operator-pod-selector=app=op"))
    with pytest.raises(ValueError, match="--operator-pod-selector"):
        operator_peers(
            parse(
                "--network-policies",
                "--operator-namespace-selector=kubernetes.io/metadata.name=ops",
            )
        )


def test_environment_turns_it_on() -> None:
    args = parse(
        environ={
            "MODELDEPLOY_NETWORK_POLICIES": "true",
            "MODELDEPLOY_OPERATOR_NAMESPACE_SELECTOR": "team=ops",
            "MODELDEPLOY_OPERATOR_POD_SELECTOR": "app=op",
        }
    )
    assert operator_peers(args) == OperatorPeers({"team": "ops"}, {"app": "op"})
    # The flag wins over the environment.
    assert (
        operator_peers(
            parse("--no-network-policies", environ={"MODELDEPLOY_NETWORK_POLICIES": "1"})
        )
        is None
    )
