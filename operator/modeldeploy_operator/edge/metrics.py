"""Prometheus metrics of the operator itself."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

_RESULT = ("namespace", "name", "result")
_OBJECT = ("namespace", "name")
_KIND = ("namespace", "name", "kind")
_CHANGE = ("namespace", "name", "kind", "action")

RECONCILES = Counter(
    "modeldeploy_reconciles_total",
    "Reconciles of a ModelDeployment, by result (ok, invalid, error).",
    _RESULT,
)
RECONCILE_SECONDS = Histogram(
    "modeldeploy_reconcile_duration_seconds",
    "Time one reconcile of a ModelDeployment took.",
    _OBJECT,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MANAGED_OBJECTS = Gauge(
    "modeldeploy_managed_objects",
    "Child objects of a ModelDeployment, by kind.",
    _KIND,
)
SERVE_SUBMISSIONS = Counter(
    "modeldeploy_serve_submissions_total",
    "Serve application configs sent to a head's dashboard, by result (ok, error).",
    _RESULT,
)
CHILD_CHANGES = Counter(
    "modeldeploy_child_changes_total",
    "Children created, replaced or deleted by the operator.",
    _CHANGE,
)

# Every per-ModelDeployment metric with its label names, in declaration order.
_PER_OBJECT: tuple[tuple[MetricWrapperBase, tuple[str, ...]], ...] = (
    (RECONCILES, _RESULT),
    (RECONCILE_SECONDS, _OBJECT),
    (MANAGED_OBJECTS, _KIND),
    (SERVE_SUBMISSIONS, _RESULT),
    (CHILD_CHANGES, _CHANGE),
)


def forget(namespace: str, name: str) -> None:
    """Drop the per-object series of a deleted ModelDeployment, so series do not pile up.

    prometheus_client removes one label set at a time and lists them only through its samples,
    so the label sets are read back from `collect()`.
    """
    for metric, label_names in _PER_OBJECT:
        owned = {
            tuple(sample.labels[n] for n in label_names)
            for family in metric.collect()
            for sample in family.samples
            if (sample.labels.get("namespace"), sample.labels.get("name")) == (namespace, name)
        }
        for labels in owned:
            metric.remove(*labels)
