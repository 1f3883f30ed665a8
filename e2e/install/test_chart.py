"""The chart as rendered by helm: RBAC, the operator pod, CRD copies, values schema, deploy/.

No cluster here: these read what `helm template` produces (the install tests apply it).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modeldeploy_operator.edge import metrics as operator_metrics

from .chart import (
    CHART,
    DEPLOY_MANIFEST,
    RENDER_DEPLOY,
    VALUE_MODES,
    documents,
    helm_binary,
    helm_template,
    of_kind,
    render,
)

Rule = tuple[str, str, frozenset[str]]  # (apiGroup, resource, verbs)

# Exactly what the operator calls (edge/kube.py, kopf), per role; the RBAC lifecycle test runs the
# operator with these and nothing more.
SERVING_RULES: set[Rule] = {
    ("modeldeploy.dev", "modeldeployments", frozenset({"list", "watch", "patch"})),
    ("modeldeploy.dev", "modeldeployments/status", frozenset({"patch"})),
    ("", "pods", frozenset({"get", "list", "create", "delete"})),
    ("", "services", frozenset({"get", "list", "create", "update", "delete"})),
    ("", "configmaps", frozenset({"get", "create", "update", "delete"})),
    ("apps", "deployments", frozenset({"get", "create", "update", "delete"})),
    ("networking.k8s.io", "networkpolicies", frozenset({"list", "create", "update", "delete"})),
    ("", "secrets", frozenset({"get"})),
    ("", "events", frozenset({"create"})),
}
CRD_READS: Rule = (
    "apiextensions.k8s.io",
    "customresourcedefinitions",
    frozenset({"list", "watch"}),
)
EXPECTED_ROLES: dict[str, dict[tuple[str, str | None], set[Rule]]] = {
    "all-namespaces": {
        ("ClusterRole", None): SERVING_RULES
        | {CRD_READS, ("kopf.dev", "clusterkopfpeerings", frozenset({"list", "watch", "patch"}))},
    },
    "listed-namespaces": {
        ("ClusterRole", None): {CRD_READS, ("", "namespaces", frozenset({"list", "watch"}))},
        **{
            ("Role", namespace): SERVING_RULES
            | {("kopf.dev", "kopfpeerings", frozenset({"list", "watch", "patch"}))}
            for namespace in ("team-a", "team-b")
        },
    },
}


def flat_rules(role: dict[str, Any]) -> set[Rule]:
    """One (group, resource, verbs) per group x resource, so rule grouping does not matter."""
    return {
        (group, resource, frozenset(rule["verbs"]))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


@pytest.mark.parametrize("mode", sorted(VALUE_MODES))
def test_roles_have_no_wildcards(mode: str) -> None:
    roles = of_kind(documents(render(*VALUE_MODES[mode])), "ClusterRole", "Role")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule, role["metadata"]
            assert "resourceNames" not in rule or "*" not in rule["resourceNames"]
            for field in ("apiGroups", "resources", "verbs"):
                wild = [v for v in rule[field] if "*" in v]
                assert not wild, f"{role['kind']} {role['metadata']['name']}: {field} {wild}"


@pytest.mark.parametrize("mode", sorted(EXPECTED_ROLES))
def test_roles_grant_exactly_what_the_operator_uses(mode: str) -> None:
    docs = documents(render(*VALUE_MODES[mode]))
    roles = {
        (doc["kind"], doc["metadata"].get("namespace")): flat_rules(doc)
        for doc in of_kind(docs, "ClusterRole", "Role")
    }
    assert roles == EXPECTED_ROLES[mode]
    # Every role is bound to the chart's ServiceAccount, in the role's own scope.
    bindings = of_kind(docs, "ClusterRoleBinding", "RoleBinding")
    bound = {(b["roleRef"]["kind"], b["metadata"].get("namespace")) for b in bindings}
    assert bound == set(roles)
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "modeldeploy", "namespace": "modeldeploy-system"}
        ]


def test_peering_objects_follow_the_watched_namespaces() -> None:
    everywhere = of_kind(documents(render()), "ClusterKopfPeering", "KopfPeering")
    assert [(d["kind"], d["metadata"]["name"]) for d in everywhere] == [
        ("ClusterKopfPeering", "modeldeploy")
    ]
    listed = of_kind(
        documents(render(*VALUE_MODES["listed-namespaces"])), "ClusterKopfPeering", "KopfPeering"
    )
    assert sorted((d["kind"], d["metadata"]["namespace"]) for d in listed) == [
        ("KopfPeering", "team-a"),
        ("KopfPeering", "team-b"),
    ]


def operator_deployment(*args: str) -> dict[str, Any]:
    [deployment] = of_kind(documents(render(*args)), "Deployment")
    return deployment


def test_operator_pod_is_hardened_and_probed() -> None:
    deployment = operator_deployment()
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]

    # The probes hit kopf's liveness endpoint on the port the operator is told to serve it on.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert f"--liveness=http://0.0.0.0:{ports['healthz']}/healthz" in container["args"]
    assert f"--metrics-port={ports['metrics']}" in container["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    # kopf's peer identity comes from POD_ID: stable per pod, distinct between the replicas.
    [pod_id] = [e for e in container["env"] if e["name"] == "POD_ID"]
    assert pod_id["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_listed_namespaces_become_operator_flags() -> None:
    [container] = operator_deployment(*VALUE_MODES["listed-namespaces"])["spec"]["template"][
        "spec"
    ]["containers"]
    assert [a for a in container["args"] if a.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]


def selector_flag(args: list[str], flag: str) -> dict[str, str]:
    [value] = [a.removeprefix(f"{flag}=") for a in args if a.startswith(f"{flag}=")]
    return dict(pair.split("=", 1) for pair in value.split(","))


def test_network_policies_off_by_default() -> None:
    [container] = operator_deployment()["spec"]["template"]["spec"]["containers"]
    assert not [a for a in container["args"] if "network-polic" in a or "selector" in a]


def test_network_policies_flag_selects_the_operators_own_pods() -> None:
    deployment = operator_deployment("--set", "networkPolicy.enabled=true")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert "--network-policies" in container["args"]
    assert selector_flag(container["args"], "--operator-namespace-selector") == {
        "kubernetes.io/metadata.name": "modeldeploy-system"
    }
    # The pods these labels pick are the Deployment's own, and only them.
    pods = selector_flag(container["args"], "--operator-pod-selector")
    assert pods == deployment["spec"]["selector"]["matchLabels"]
    assert pods.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_pdb_only_with_more_than_one_replica() -> None:
    assert of_kind(documents(render()), "PodDisruptionBudget")
    assert not of_kind(documents(render(*VALUE_MODES["one-replica"])), "PodDisruptionBudget")


def test_metrics_service_targets_the_metrics_port() -> None:
    docs = documents(render(*VALUE_MODES["optional-objects"]))
    [service] = of_kind(docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    [monitor] = of_kind(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_deploy_manifest_is_current() -> None:
    rendered = subprocess.run(
        [str(RENDER_DEPLOY), str(helm_binary())], capture_output=True, text=True, check=True
    ).stdout
    assert DEPLOY_MANIFEST.read_text() == rendered, (
        "deploy/modeldeploy.yaml is stale: run `make deploy-manifests`"
    )


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (["--set", "watchNamespaces={team-*}"], "/watchNamespaces/0"),
        (["--set", "image.digest=latest"], "/image/digest"),
        (["--set", "replicaCount=0"], "/replicaCount"),
        (["--set", "operator.logFormat=xml"], "/operator/logFormat"),
        (["--set", "unknownValue=1"], "unknownValue"),
        (["--set", "networkPolicy.enabled=yes"], "/networkPolicy/enabled"),
        (["--set", "networkPolicy.ports={1}"], "networkPolicy"),
    ],
)
def test_values_schema_rejects(sets: list[str], complaint: str) -> None:
    done = helm_template(*sets)
    assert done.returncode != 0
    assert complaint in done.stderr, done.stderr


# -- the Grafana dashboard ------------------------------------------------------------------
METRIC_NAME = re.compile(r"\b((?:vllm:|ray_serve_|modeldeploy_)[a-z0-9_:]+)")


def dashboard_metrics() -> set[str]:
    dashboard = json.loads((CHART / "dashboards" / "modeldeploy.json").read_text())
    names: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names |= set(METRIC_NAME.findall(target["expr"]))
    return names


def base_name(name: str) -> str:
    """A series name as its exporter declares it (Prometheus adds _total, _bucket, ...)."""
    return re.sub(r"_(total|bucket|sum|count)$", "", name)


def test_dashboard_panels_cover_what_operators_watch() -> None:
    dashboard = json.loads((CHART / "dashboards" / "modeldeploy.json").read_text())
    titles = {panel["title"] for panel in dashboard["panels"]}
    expected = {"Queue depth", "Replicas", "Time to first token", "Tokens per second", "Errors"}
    assert expected <= titles


def package_dir(name: str) -> Path:
    """Where an installed package lives, found without importing it (vLLM takes a minute)."""
    spec = importlib.util.find_spec(name)
    assert spec and spec.origin, f"{name} is not installed"
    return Path(spec.origin).parent


def test_dashboard_queries_metrics_that_exist() -> None:
    """Every series the dashboard reads is declared by the operator, vLLM or Ray Serve."""
    declared_ours = {
        metric._name for metric in vars(operator_metrics).values() if hasattr(metric, "_name")
    }
    vllm_source = (package_dir("vllm") / "v1" / "metrics" / "loggers.py").read_text()
    serve_source = "\n".join(p.read_text() for p in (package_dir("ray") / "serve").rglob("*.py"))
    for name in sorted(dashboard_metrics()):
        declared = base_name(name)
        if declared.startswith("modeldeploy_"):
            assert declared in declared_ours, name
        elif declared.startswith("vllm:"):
            assert f'"{declared}"' in vllm_source, name
        else:  # Ray prefixes its own metrics with ray_
            assert f'"{declared.removeprefix("ray_")}"' in serve_source, name
