"""kopf wiring: thin handlers, each a decorator and one call into the Reconciler.

Create, update, resume and a timer share one reconcile (level-based), so drift is repaired on the
next tick rather than only when an event arrives. A per-object lock keeps a timer tick and a
change handler from reconciling the same ModelDeployment at the same time.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from . import metrics
from .api import GROUP, PLURAL, VERSION
from .reconcile import Reconciler

ANNOTATION_PREFIX = "modeldeploy.dev"


@dataclass(frozen=True)
class KopfEvents:
    """Kubernetes events attached to one ModelDeployment, posted through kopf."""

    body: Any

    def normal(self, reason: str, message: str) -> None:
        kopf.info(self.body, reason=reason, message=message)

    def warning(self, reason: str, message: str) -> None:
        kopf.warn(self.body, reason=reason, message=message)


def build_registry(reconciler: Reconciler, resync_seconds: float) -> kopf.OperatorRegistry:
    """A kopf registry with every handler of the operator bound to `reconciler`."""
    registry = kopf.OperatorRegistry()
    locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
    resource = (GROUP, VERSION, PLURAL)

    def reconcile(body: kopf.Body, patch: kopf.Patch) -> None:
        with locks[body["metadata"]["uid"]]:
            try:
                status = reconciler.reconcile(dict(body), KopfEvents(body))
            except ApiException as exc:
                # Conflicts and apiserver hiccups: retry soon, never sleep in the handler.
                raise kopf.TemporaryError(
                    f"Kubernetes API: {exc.status} {exc.reason}", delay=5
                ) from None
        patch.status.update(status)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Annotations rather than status: our status schema is strict and kopf's would be pruned.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix=ANNOTATION_PREFIX
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
        )
        settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
        settings.posting.level = 20  # INFO: an event for every action

    @kopf.on.resume(*resource, registry=registry)
    @kopf.on.create(*resource, registry=registry)
    @kopf.on.update(*resource, registry=registry)
    def on_change(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        reconcile(body, patch)

    @kopf.timer(*resource, interval=resync_seconds, registry=registry)
    def on_timer(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        reconcile(body, patch)

    @kopf.on.event(*resource, registry=registry)
    def on_event(event: kopf.RawEvent, **_: Any) -> None:
        if event["type"] == "DELETED":
            metadata = event["object"]["metadata"]
            metrics.forget(metadata["namespace"], metadata["name"])
            locks.pop(metadata["uid"], None)

    return registry
