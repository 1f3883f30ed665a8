"""Prometheus metrics of the operator itself."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "modeldeploy_reconciles_total",
    "Reconciles of a ModelDeployment, by result (ok, invalid, error).",
    ["namespace", "name", "result"],
)
RECONCILE_SECONDS = Histogram(
    "modeldeploy_reconcile_duration_seconds",
    "Time one reconcile of a ModelDeployment took.",
    ["namespace", "name"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MANAGED_OBJECTS = Gauge(
    "modeldeploy_managed_objects",
    "Child objects of a ModelDeployment, by kind.",
    ["namespace", "name", "kind"],
)
SERVE_SUBMISSIONS = Counter(
    "modeldeploy_serve_submissions_total",
    "Serve application configs sent to a head's dashboard, by result (ok, error).",
    ["namespace", "name", "result"],
)
CHILD_CHANGES = Counter(
    "modeldeploy_child_changes_total",
    "Children created, replaced or deleted by the operator.",
    ["namespace", "name", "kind", "action"],
)


def forget(namespace: str, name: str) -> None:
    """Drop the per-object series of a deleted ModelDeployment, so series do not pile up."""
    for metric in (
        RECONCILES,
        RECONCILE_SECONDS,
        MANAGED_OBJECTS,
        SERVE_SUBMISSIONS,
        CHILD_CHANGES,
    ):
        for labels in list(metric._metrics):  # prometheus_client has no public per-prefix removal
            if labels[:2] == (namespace, name):
                metric.remove(*labels)
