"""The namespace's gateway on the real control plane: created when a ModelDeployment asks for it,
routing every model of the namespace, its Secrets mounted (never copied), missing Secrets named
in the status, and removed when no ModelDeployment asks for it any more.

No Ray here (the dashboard is a closed port) and no pods run: what is under test is what the
operator writes to Kubernetes and what it reports.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
from cluster.localcluster import free_port, wait_until
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from .conftest import ModelDeployments
from .harness import OperatorProcess

GATEWAY = "modeldeploy-gateway"
CPU_SPEC = {
    "model": {"source": "hf://org/tiny"},
    "resources": {"accelerator": "cpu", "cpu": "1", "memory": "1Gi"},
}
CLIENT_KEY = "ck-e2e-client-key-value"
PROVIDER_KEY = "pk-e2e-provider-key-value"


def gateway_objects(mds: ModelDeployments) -> dict[str, object | None]:
    apps = client.AppsV1Api(mds.core.api_client)
    readers = {
        "ConfigMap": lambda: mds.core.read_namespaced_config_map(GATEWAY, mds.namespace),
        "Deployment": lambda: apps.read_namespaced_deployment(GATEWAY, mds.namespace),
        "Service": lambda: mds.core.read_namespaced_service(GATEWAY, mds.namespace),
    }
    found: dict[str, object | None] = {}
    for kind, read in readers.items():
        try:
            found[kind] = read()
        except ApiException as exc:
            if exc.status != 404:
                raise
            found[kind] = None
    return found


def routes(mds: ModelDeployments) -> list[str]:
    configmap = gateway_objects(mds)["ConfigMap"]
    return [] if configmap is None else configmap_routes(configmap)  # type: ignore[arg-type]


def configmap_routes(configmap: client.V1ConfigMap) -> list[str]:
    return sorted(r["name"] for r in json.loads(configmap.data["config.json"])["routes"])


def secret(mds: ModelDeployments, name: str, key: str, value: str) -> None:
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data={key: value})
    mds.core.create_namespaced_secret(mds.namespace, body)


def test_gateway_follows_the_namespace(
    start_operator: Callable[..., OperatorProcess],
    mds: ModelDeployments,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its /metrics is not reachable from here: a closed port, so status.traffic stays absent.
    monkeypatch.setenv("MODELDEPLOY_GATEWAY_URL", f"http://127.0.0.1:{free_port()}")
    start_operator()
    mds.create("plain", {**CPU_SPEC, "model": {"source": "hf://org/plain"}})
    spec = {
        **CPU_SPEC,
        "endpoint": {"apiKeysSecretRef": {"name": "team-keys"}},
        "overflow": {
            "baseUrl": "https://api.example.com/v1",
            "model": "hosted-model",
            "apiKeySecretRef": {"name": "provider", "key": "token"},
        },
    }
    mds.create("chat", spec)
    ready = mds.wait_condition("chat", "Ready", "False", "InvalidSpec")
    assert "spec.endpoint.apiKeysSecretRef" in ready["message"], ready
    assert "spec.overflow.apiKeySecretRef" in ready["message"], ready

    secret(mds, "team-keys", "api-keys", CLIENT_KEY)
    secret(mds, "provider", "token", PROVIDER_KEY)
    wait_until(lambda: all(gateway_objects(mds).values()), 60, "the gateway's objects")
    # Every model of the namespace is routed, the plain one too; the provider's model as well.
    wait_until(lambda: routes(mds) == ["org/plain", "org/tiny"], 30, "both routes")
    objects = gateway_objects(mds)
    deployment = objects["Deployment"]
    pod = deployment.spec.template.spec  # type: ignore[attr-defined]
    secrets = sorted(v.secret.secret_name for v in pod.volumes if v.secret)
    assert secrets == ["provider", "team-keys"]
    owners = sorted(r.name for r in deployment.metadata.owner_references)  # type: ignore[attr-defined]
    assert owners == ["chat", "plain"]

    # No key value in what the operator wrote or said.
    texts = [json.dumps(client.ApiClient().sanitize_for_serialization(o)) for o in objects.values()]
    texts += [json.dumps(mds.get(name)) for name in ("chat", "plain")]
    texts += [e.message or "" for name in ("chat", "plain") for e in mds.events(name)]
    assert not [t for t in texts if CLIENT_KEY in t or PROVIDER_KEY in t]

    # No model asks for the gateway any more: it goes, though a plain model remains.
    mds.delete("chat")
    wait_until(lambda: not any(gateway_objects(mds).values()), 90, "gateway removed")
    mds.delete("plain")


COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_pinned_models_are_routed_and_a_restart_writes_no_partial_gateway(
    start_operator: Callable[..., OperatorProcess],
    mds: ModelDeployments,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Digests from a ConfigMap once made the whole namespace's gateway fail to build; an
    operator restart once rewrote the gateway from the first reconciled model alone."""
    monkeypatch.setenv("MODELDEPLOY_GATEWAY_URL", f"http://127.0.0.1:{free_port()}")
    manifest = json.dumps({"revision": COMMIT, "files": {"model.safetensors": DIGEST}})
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="pinned-digests"), data={"manifest.json": manifest}
    )
    mds.core.create_namespaced_config_map(mds.namespace, body)
    operator = start_operator()
    pinned = {
        "source": "pvc://models/pinned",
        "revision": COMMIT,
        "digests": {"configMapRef": {"name": "pinned-digests", "key": "manifest.json"}},
    }
    mds.create("pinned", {**CPU_SPEC, "model": pinned, "privacy": {"localOnly": True}})
    for i in range(4):
        # Each asks for the gateway: any one reconciled alone would write it.
        private = {"localOnly": True}
        mds.create(f"m{i}", {**CPU_SPEC, "model": {"source": f"hf://org/m{i}"}, "privacy": private})
    wait_until(lambda: len(routes(mds)) == 5, 90, "five routes, the pinned model's among them")
    whole = routes(mds)
    objects = gateway_objects(mds)
    # Its generation moves with its spec only (status writes move the resourceVersion too).
    generation = objects["Deployment"].metadata.generation  # type: ignore[union-attr]

    # Every version of the ConfigMap written after the restart, as the apiserver sends them.
    seen: list[list[str]] = []
    stop = threading.Event()
    start_version = objects["ConfigMap"].metadata.resource_version  # type: ignore[union-attr]

    def record() -> None:
        stream = watch.Watch().stream(
            mds.core.list_namespaced_config_map,
            mds.namespace,
            field_selector=f"metadata.name={GATEWAY}",
            resource_version=start_version,
            timeout_seconds=60,
        )
        for event in stream:
            seen.append(configmap_routes(event["object"]))
            if stop.is_set():
                break

    watcher = threading.Thread(target=record, daemon=True)
    watcher.start()
    operator.stop()
    offset = len(operator.log_text())
    # The same (closed) dashboard address as before: the routes name it.
    same = (
        f"--dashboard-url-template={operator.dashboard_template}",
        f"--metrics-url-template={operator.metrics_template}",
    )
    restarted = start_operator(flags=same)
    # Every model reconciled again after the start: each reconcile lists the model's pods.
    wait_until(
        lambda: all(
            f"/pods?labelSelector=modeldeploy.dev/name%3D{n} " in restarted.log_text()[offset:]
            for n in ("pinned", "m0", "m1", "m2", "m3")
        ),
        60,
        "every model reconciled by the restarted operator",
    )
    time.sleep(3)  # a write the last reconcile would make has landed
    stop.set()
    assert all(version == whole for version in seen), seen
    assert routes(mds) == whole
    after = gateway_objects(mds)["Deployment"].metadata.generation  # type: ignore[union-attr]
    assert after == generation, "the restart changed the gateway's Deployment"
