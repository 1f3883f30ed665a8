"""Keeping each namespace's gateway in step with its ModelDeployments (the I/O edge).

The reconcile of one ModelDeployment tells this class what it saw (`observe`, with the
ServingConfig it built, or `exclude` for an invalid spec) and, after the model's own children,
asks it to bring the namespace's gateway objects up to date (`sync`); the objects themselves come
from the pure builders in builders/gateway.py. Choices that keep the view whole and the cost flat:
- the namespace's ModelDeployments are remembered from their own reconciles, each with the
  ServingConfig that reconcile built (a digest manifest from a ConfigMap is read there only);
- the objects are written only when the set of ModelDeployments or one of their specs changed
  (a key of names, uids and generations), or after `resync_s` to repair drift. Before writing,
  the namespace's ModelDeployments are listed: until each has been reconciled once since the
  operator started, nothing is written (a partial view would drop routes and roll the gateway);
  the reconcile of the last one writes the whole view;
- a namespace where no ModelDeployment asks for the gateway gets none, and costs nothing. When
  the last one that asked stops asking (or is deleted), the objects are deleted; ones left from
  before an operator restart go with the namespace's last ModelDeployment (they are owned by all);
- an object of the gateway's name that no ModelDeployment owns is someone else's: it is never
  replaced or deleted, and a Warning event says so.
The gateway's request counters are read over HTTP for `status.traffic`, at most once per
`traffic_ttl_s` per namespace: every model's reconcile asks, and one answer covers them all.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from modeldeploy_serving.config import ServingConfig

from ..api import API_VERSION, KIND, PLURAL, ModelDeployment
from ..builders.gateway import (
    DEFAULT_GATEWAY_IMAGE,
    GATEWAY_NAME,
    GATEWAY_URL_TEMPLATE,
    build_gateway_config,
    build_gateway_configmap,
    build_gateway_deployment,
    build_gateway_service,
    cluster_location,
    mounted_secret,
)
from ..common.hashing import canonical_hash, hash_of
from ..decide.traffic import TrafficCounts, traffic_from_metrics
from .events import EventSink

CONFIGMAP = "/api/v1/namespaces/{namespace}/configmaps"
DEPLOYMENT = "/apis/apps/v1/namespaces/{namespace}/deployments"
SERVICE = "/api/v1/namespaces/{namespace}/services"
MODELDEPLOYMENTS = f"/apis/{API_VERSION}/namespaces/{{namespace}}/{PLURAL}"


class GatewayKube(Protocol):
    """The Kubernetes calls the gateway needs (kube.Kube implements them)."""

    def get_object(self, path: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_object(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None: ...

    def replace_object(self, path: str, body: dict[str, Any], live: dict[str, Any]) -> None: ...

    def delete_object(self, path: str, namespace: str, name: str) -> None: ...

    def list_objects(
        self, path: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]: ...


def fetch_text(url: str, timeout_s: float = 2.0) -> str | None:
    """GET url as text; None when it does not answer (the status keeps its last counts)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            text: str = response.read().decode(errors="replace")
            return text
    except (urllib.error.URLError, OSError, ValueError):
        return None


@dataclass
class GatewaySync:
    kube: GatewayKube
    dashboard_template: str
    url_template: str = GATEWAY_URL_TEMPLATE
    image: str = DEFAULT_GATEWAY_IMAGE
    resync_s: float = 60.0
    traffic_ttl_s: float = 5.0
    fetch: Callable[[str], str | None] = fetch_text
    clock: Callable[[], float] = time.monotonic
    _seen: defaultdict[str, dict[str, tuple[ModelDeployment, ServingConfig]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    _reconciled: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    _synced: dict[str, tuple[str, float]] = field(default_factory=dict)
    _metrics: dict[str, tuple[str | None, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, namespace: str, md: ModelDeployment, serving: ServingConfig) -> None:
        """A valid ModelDeployment, with the ServingConfig its reconcile built."""
        name = str(md.metadata["name"])
        with self._lock:
            self._seen[namespace][name] = (md, serving)
            self._reconciled[namespace].add(name)

    def exclude(self, namespace: str, name: str) -> None:
        """A ModelDeployment reconciled with an invalid spec: no route until it is fixed."""
        with self._lock:
            self._seen[namespace].pop(name, None)
            self._reconciled[namespace].add(name)

    def forget(self, namespace: str, name: str) -> None:
        """A deleted ModelDeployment."""
        with self._lock:
            self._seen[namespace].pop(name, None)
            self._reconciled[namespace].discard(name)

    def serves(self, namespace: str) -> bool:
        """Whether the namespace has a gateway: some ModelDeployment there asks for it."""
        with self._lock:
            return any(md.spec.uses_gateway() for md, _ in self._seen[namespace].values())

    def sync(self, namespace: str, events: EventSink) -> None:
        with self._lock:
            models = sorted(
                self._seen[namespace].values(), key=lambda m: str(m[0].metadata["name"])
            )
            reconciled = set(self._reconciled[namespace])
        if not any(md.spec.uses_gateway() for md, _ in models):
            if self._synced.pop(namespace, None) is not None:
                # The last ModelDeployment that asked for it is gone or changed its mind.
                for path in (SERVICE, DEPLOYMENT, CONFIGMAP):
                    if self._owned(self.kube.get_object(path, namespace, GATEWAY_NAME)):
                        self.kube.delete_object(path, namespace, GATEWAY_NAME)
                events.normal("Deleted", f"deleted the namespace's gateway {GATEWAY_NAME}")
            return
        key = canonical_hash(
            [
                (m.metadata["name"], m.metadata.get("uid"), m.metadata.get("generation"))
                for m, _ in models
            ]
        )
        last = self._synced.get(namespace)
        if last is not None and last[0] == key and self.clock() - last[1] < self.resync_s:
            return
        listed = {
            o["metadata"]["name"]
            for o in self.kube.list_objects(MODELDEPLOYMENTS, namespace, "")
            if not o["metadata"].get("deletionTimestamp")
        }
        if listed - reconciled:
            return  # not every ModelDeployment reconciled since the start: no partial view
        models = [m for m in models if m[0].metadata["name"] in listed]
        mds = [md for md, _ in models]
        config = build_gateway_config(
            models, cluster_location(namespace, self.dashboard_template), mounted_secret
        )
        desired = [
            (CONFIGMAP, build_gateway_configmap(namespace, mds, config)),
            (DEPLOYMENT, build_gateway_deployment(namespace, mds, config, self.image)),
            (SERVICE, build_gateway_service(namespace, mds)),
        ]
        for path, body in desired:
            self._ensure(path, namespace, body, events)
        self._synced[namespace] = (key, self.clock())

    @staticmethod
    def _owned(live: dict[str, Any] | None) -> bool:
        """Whether a live object is the gateway's: owned by a ModelDeployment."""
        owners = (live or {}).get("metadata", {}).get("ownerReferences") or []
        return any(o.get("apiVersion") == API_VERSION and o.get("kind") == KIND for o in owners)

    def _ensure(self, path: str, namespace: str, body: dict[str, Any], events: EventSink) -> None:
        name, kind = body["metadata"]["name"], body["kind"]
        live = self.kube.get_object(path, namespace, name)
        if live is None:
            if self.kube.create_object(path, body) is not None:
                events.normal("Created", f"created the namespace's gateway {kind} {name}")
        elif not self._owned(live):
            events.warning(
                "GatewayConflict",
                f"{kind} {name} exists and no ModelDeployment owns it: the gateway is not "
                f"written over it; rename or remove that {kind}",
            )
        elif hash_of(live) != hash_of(body):
            self.kube.replace_object(path, body, live)
            events.normal("Updated", f"updated the namespace's gateway {kind} {name}")

    def traffic(self, namespace: str, model: str) -> TrafficCounts | None:
        """This model's request counts from the gateway; None without one or no answer."""
        if not self.serves(namespace):
            return None
        text = self._gateway_metrics(namespace)
        return None if text is None else traffic_from_metrics(text, model)

    def _gateway_metrics(self, namespace: str) -> str | None:
        with self._lock:
            cached = self._metrics.get(namespace)
        if cached is not None and self.clock() - cached[1] < self.traffic_ttl_s:
            return cached[0]
        text = self.fetch(self.url_template.format(namespace=namespace) + "/metrics")
        with self._lock:
            self._metrics[namespace] = (text, self.clock())
        return text
