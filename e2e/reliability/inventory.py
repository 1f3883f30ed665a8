"""What a namespace holds of modeldeploy's objects, and what is wrong with it (pure).

Counts each ModelDeployment's children by label and controlling owner, and finds the objects no
live ModelDeployment owns (leaks), more children than the spec asks for (duplicates), fewer
(missing), and ModelDeployments whose status does not yet describe their current generation.
Input is plain API dicts (`ApiClient.sanitize_for_serialization`), so a failure message can
print exactly what was seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

NAME_LABEL = "modeldeploy.dev/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=modeldeploy"
WORKER_INDEX = "modeldeploy.dev/worker-index"
SERVICES_PER_DEPLOYMENT = 2  # the head Service and the endpoint Service


@dataclass(frozen=True)
class Children:
    """One ModelDeployment's children as found, against what its spec asks for."""

    expected_workers: int
    heads: int = 0
    workers: int = 0
    services: int = 0
    worker_indices: int = 0
    """Distinct worker indices: fewer than `workers` means two pods for one worker."""

    @property
    def total(self) -> int:
        return self.heads + self.workers + self.services

    @property
    def duplicates(self) -> int:
        return (
            max(self.heads - 1, 0)
            + max(self.workers - self.expected_workers, 0)
            + (self.workers - self.worker_indices)
            + max(self.services - SERVICES_PER_DEPLOYMENT, 0)
        )

    @property
    def missing(self) -> int:
        return (
            max(1 - self.heads, 0)
            + max(self.expected_workers - self.workers, 0)
            + max(SERVICES_PER_DEPLOYMENT - self.services, 0)
        )


@dataclass
class Inventory:
    children: dict[str, Children] = field(default_factory=dict)
    leaked: list[str] = field(default_factory=list)
    """kind/name of objects with the project's labels and no live controlling owner."""
    terminating: list[str] = field(default_factory=list)
    unsettled: dict[str, str] = field(default_factory=dict)
    """ModelDeployment name -> why its status is not settled yet."""

    @property
    def duplicates(self) -> int:
        return sum(c.duplicates for c in self.children.values())

    @property
    def missing(self) -> int:
        return sum(c.missing for c in self.children.values())

    @property
    def objects(self) -> int:
        return sum(c.total for c in self.children.values()) + len(self.leaked)

    def converged(self) -> bool:
        return not (
            self.duplicates or self.missing or self.leaked or self.terminating or self.unsettled
        )

    def summary(self) -> dict[str, Any]:
        return {
            "modeldeployments": len(self.children),
            "objects": self.objects,
            "pods": sum(c.heads + c.workers for c in self.children.values()),
            "services": sum(c.services for c in self.children.values()),
            "duplicates": self.duplicates,
            "missing": self.missing,
            "leaked": len(self.leaked),
            "terminating": len(self.terminating),
            "unsettled": len(self.unsettled),
        }

    def problems(self) -> str:
        """What keeps it from converging, for a failure message."""
        wrong = {n: c for n, c in self.children.items() if c.duplicates or c.missing}
        return (
            f"children off: {wrong}; leaked: {self.leaked}; terminating: {self.terminating}; "
            f"unsettled: {self.unsettled}"
        )


def _controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "ModelDeployment":
            return str(ref["uid"])
    return None


def status_problem(md: dict[str, Any], expected_workers: int, degraded_reason: str) -> str | None:
    """Why md's status is not settled for its current generation, or None.

    Settled: written for the current generation (the status and every condition), every worker
    ready and no more asked for, and Degraded for the one expected reason (e.g. the dashboard
    being unreachable where no Ray head runs) or none ("AsExpected").
    """
    generation = md["metadata"].get("generation")
    status = md.get("status") or {}
    if status.get("observedGeneration") != generation:
        return f"observedGeneration {status.get('observedGeneration')} != generation {generation}"
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    stale = [t for t, c in conditions.items() if c.get("observedGeneration") != generation]
    if stale or "Degraded" not in conditions:
        return f"conditions not for generation {generation}: {stale or 'no Degraded'}"
    workers = status.get("workers") or {}
    wanted = {"desired": expected_workers, "ready": expected_workers, "pending": 0}
    if {k: workers.get(k) for k in wanted} != wanted:
        return f"workers {workers} != {wanted}"
    if conditions["Degraded"].get("reason") != degraded_reason:
        return f"Degraded reason {conditions['Degraded'].get('reason')} != {degraded_reason}"
    return None


def take_inventory(
    mds: Sequence[dict[str, Any]],
    objects: Iterable[dict[str, Any]],
    expected_workers: dict[str, int],
    degraded_reason: str = "AsExpected",
) -> Inventory:
    """Sort `objects` (everything carrying the project's labels in one namespace, each with its
    `kind`) under the live ModelDeployments `mds`; `expected_workers` by ModelDeployment name."""
    live = {md["metadata"]["uid"]: md for md in mds if not md["metadata"].get("deletionTimestamp")}
    inventory = Inventory()
    counts: dict[str, dict[str, Any]] = {
        md["metadata"]["name"]: {"heads": 0, "workers": 0, "services": 0, "indices": set()}
        for md in live.values()
    }
    for obj in objects:
        metadata = obj["metadata"]
        ref = f"{obj['kind']}/{metadata['name']}"
        if metadata.get("deletionTimestamp"):
            inventory.terminating.append(ref)
        owner = live.get(_controller_uid(obj) or "")
        name = (metadata.get("labels") or {}).get(NAME_LABEL)
        owners = {r.get("uid") for r in metadata.get("ownerReferences") or []}
        if owner is None and owners & live.keys():
            continue  # shared by the namespace's ModelDeployments (the gateway): no one's child
        if owner is None or owner["metadata"]["name"] != name:
            inventory.leaked.append(ref)
            continue
        count = counts[name]
        component = metadata["labels"].get(COMPONENT_LABEL)
        if obj["kind"] == "Service":
            count["services"] += 1
        elif obj["kind"] == "Pod" and component == "ray-head":
            count["heads"] += 1
        elif obj["kind"] == "Pod" and component == "ray-worker":
            count["workers"] += 1
            count["indices"].add((metadata.get("annotations") or {}).get(WORKER_INDEX))
        else:
            inventory.leaked.append(ref)  # a kind this test's specs never ask for
    for md in live.values():
        name = md["metadata"]["name"]
        count = counts[name]
        inventory.children[name] = Children(
            expected_workers=expected_workers[name],
            heads=count["heads"],
            workers=count["workers"],
            services=count["services"],
            worker_indices=len(count["indices"]),
        )
        problem = status_problem(md, expected_workers[name], degraded_reason)
        if problem:
            inventory.unsettled[name] = problem
    return inventory
