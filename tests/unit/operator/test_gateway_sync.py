"""When the namespace's gateway objects are written: once per change of the namespace's
ModelDeployments, never for a namespace that does not ask for a gateway, never from a partial
view, never over an object no ModelDeployment owns."""

from __future__ import annotations

import json
from typing import Any

from modeldeploy_operator.api import ModelDeployment
from modeldeploy_operator.builders.serving_config import build_serving_config
from modeldeploy_operator.common.hashing import canonical_hash
from modeldeploy_operator.edge.gateway_sync import GatewaySync
from tests.api_cases import merge
from tests.operator_factories import BASE

METRICS = 'modeldeploy_gateway_requests_total{model="chat",served_by="overflow",reason="X"} 4\n'


class DictKube:
    """Objects in a dict; counts writes. Stands in for the apiserver in this logic-only test."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes = 0
        self.modeldeployments: set[str] = set()  # what a list of the namespace returns

    def list_objects(self, path: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        assert path.endswith("/modeldeployments")
        return [{"metadata": {"name": name}} for name in sorted(self.modeldeployments)]

    def get_object(self, path: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((path, name))

    def create_object(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        self.writes += 1
        self.objects[(path, body["metadata"]["name"])] = body
        return body

    def replace_object(self, path: str, body: dict[str, Any], live: dict[str, Any]) -> None:
        self.writes += 1
        self.objects[(path, body["metadata"]["name"])] = body

    def delete_object(self, path: str, namespace: str, name: str) -> None:
        self.writes += 1
        self.objects.pop((path, name), None)


class Events:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def normal(self, reason: str, message: str) -> None:
        self.messages.append(message)

    def warning(self, reason: str, message: str) -> None:
        self.messages.append(f"{reason}: {message}")


def md(name: str, generation: int = 1, **spec: Any) -> ModelDeployment:
    doc = merge(BASE, {"metadata": {"name": name, "uid": f"u-{name}", "generation": generation}})
    doc["spec"] |= spec
    doc["spec"]["model"] = {**doc["spec"]["model"], "servedModelName": name}
    return ModelDeployment.model_validate(doc)


class Sync(GatewaySync):
    """GatewaySync whose observed ModelDeployments also exist in the DictKube."""

    def see(self, model: ModelDeployment, manifest: dict[str, str] | None = None) -> None:
        assert isinstance(self.kube, DictKube)
        self.kube.modeldeployments.add(str(model.metadata["name"]))
        self.observe("team", model, build_serving_config(model, manifest))


def sync_for(kube: DictKube, now: list[float]) -> Sync:
    return Sync(
        kube, "http://{name}-head.{namespace}.svc:8265", clock=lambda: now[0],
        fetch=lambda url: METRICS if url.startswith("http://modeldeploy-gateway.team") else None,
    )  # fmt: skip


def test_plain_namespace_gets_no_gateway() -> None:
    kube, now = DictKube(), [0.0]
    sync = sync_for(kube, now)
    sync.see(md("plain"))
    sync.sync("team", Events())
    assert kube.objects == {} and sync.traffic("team", "chat") is None


def test_written_once_per_change_and_again_after_the_resync_period() -> None:
    kube, now, events = DictKube(), [0.0], Events()
    sync = sync_for(kube, now)
    sync.see(md("chat", endpoint={"apiKeysSecretRef": {"name": "keys"}}))
    sync.see(md("plain"))
    sync.sync("team", events)
    assert kube.writes == 3 and len(events.messages) == 3  # ConfigMap, Deployment, Service
    sync.sync("team", events)
    assert kube.writes == 3  # nothing changed: not even read again
    sync.see(md("plain", generation=2, scaling={"maxQueuedRequests": 5}))
    sync.sync("team", events)
    assert kube.writes == 5  # a route changed: the ConfigMap, and the Deployment (config hash)
    configmap = next(v for (p, _), v in kube.objects.items() if "configmaps" in p)
    assert '"max_queued_requests":5' in configmap["data"]["config.json"]
    now[0] = 61.0
    sync.sync("team", events)
    assert kube.writes == 5  # after the resync period: read, found equal, not written


def test_forgotten_model_leaves_the_routes() -> None:
    kube, now = DictKube(), [0.0]
    sync = sync_for(kube, now)
    sync.see(md("chat", privacy={"localOnly": True}))
    sync.see(md("old"))
    sync.sync("team", Events())
    sync.forget("team", "old")
    kube.modeldeployments.discard("old")
    sync.sync("team", Events())
    configmap = next(v for (p, _), v in kube.objects.items() if "configmaps" in p)
    assert '"name":"old"' not in configmap["data"]["config.json"]
    assert canonical_hash(configmap) != ""
    # The last model that asked for the gateway is gone: so is the gateway.
    sync.forget("team", "chat")
    kube.modeldeployments.discard("chat")
    sync.see(md("plain"))
    sync.sync("team", Events())
    assert kube.objects == {}


def test_traffic_is_read_from_the_namespace_gateway() -> None:
    kube, now = DictKube(), [0.0]
    sync = sync_for(kube, now)
    sync.see(md("chat", privacy={"localOnly": True}))
    counts = sync.traffic("team", "chat")
    assert counts is not None and counts.overflow == 4


def test_one_gateway_scrape_serves_every_model_of_the_namespace_for_a_while() -> None:
    kube, now, urls = DictKube(), [0.0], []
    sync = Sync(
        kube, "http://{name}-head.{namespace}.svc:8265", clock=lambda: now[0],
        fetch=lambda url: urls.append(url) or METRICS,
    )  # fmt: skip
    for name in ("chat", "code"):
        sync.see(md(name, privacy={"localOnly": True}))
    assert sync.traffic("team", "chat") is not None
    assert sync.traffic("team", "code") is not None
    assert len(urls) == 1
    now[0] = sync.traffic_ttl_s
    assert sync.traffic("team", "chat") is not None
    assert len(urls) == 2


def routes(kube: DictKube) -> list[str]:
    configmap = next(v for (p, _), v in kube.objects.items() if "configmaps" in p)
    return sorted(r["name"] for r in json.loads(configmap["data"]["config.json"])["routes"])


def test_digests_from_a_configmap_reach_the_gateway_with_the_reconciles_serving_config() -> None:
    """The manifest is read by the reconcile only; the gateway's routes build without it."""
    kube, now = DictKube(), [0.0]
    sync = sync_for(kube, now)
    commit = "0123456789abcdef0123456789abcdef01234567"
    model = {
        "source": "pvc://models/llama",
        "servedModelName": "pinned",
        "revision": commit,
        "digests": {"configMapRef": {"name": "digests", "key": "manifest.json"}},
    }
    pinned = md("pinned", model=model)
    sync.see(pinned, manifest={"model.safetensors": "0" * 64})
    sync.see(md("chat", privacy={"localOnly": True}))
    sync.sync("team", Events())
    assert routes(kube) == ["chat", "pinned"]


def test_nothing_is_written_until_every_listed_model_was_reconciled() -> None:
    """After an operator restart the reconciles arrive one by one: a gateway written from the
    first would lose the other routes and roll."""
    kube, now = DictKube(), [0.0]
    sync = sync_for(kube, now)
    kube.modeldeployments = {"chat", "code", "broken"}
    sync.see(md("chat", privacy={"localOnly": True}))
    sync.sync("team", Events())
    assert kube.writes == 0
    sync.exclude("team", "broken")  # reconciled, invalid: counted, not routed
    sync.see(md("code"))
    sync.sync("team", Events())
    assert routes(kube) == ["chat", "code"]


def test_an_object_no_modeldeployment_owns_is_left_alone() -> None:
    kube, now, events = DictKube(), [0.0], Events()
    foreign = {"kind": "Service", "metadata": {"name": "modeldeploy-gateway"}, "spec": {}}
    kube.objects[("/api/v1/namespaces/{namespace}/services", "modeldeploy-gateway")] = foreign
    sync = sync_for(kube, now)
    sync.see(md("chat", privacy={"localOnly": True}))
    sync.sync("team", events)
    assert (
        kube.objects[("/api/v1/namespaces/{namespace}/services", "modeldeploy-gateway")] is foreign
    )
    assert any(
        m.startswith("GatewayConflict: Service modeldeploy-gateway") for m in events.messages
    )
    sync.forget("team", "chat")
    sync.sync("team", events)
    assert ("/api/v1/namespaces/{namespace}/services", "modeldeploy-gateway") in kube.objects
