from __future__ import annotations

from prometheus_client import REGISTRY

from modeldeploy_operator.edge import metrics


def _series_of(namespace: str, name: str) -> int:
    return sum(
        1
        for family in REGISTRY.collect()
        if family.name.startswith("modeldeploy_")
        for sample in family.samples
        if (sample.labels.get("namespace"), sample.labels.get("name")) == (namespace, name)
    )


def test_forget_drops_every_series_of_one_deployment_and_only_those() -> None:
    for name in ("gone", "kept"):
        metrics.RECONCILES.labels("team-m", name, "ok").inc()
        metrics.RECONCILE_SECONDS.labels("team-m", name).observe(0.2)
        metrics.MANAGED_OBJECTS.labels("team-m", name, "Pod").set(3)
        metrics.SERVE_SUBMISSIONS.labels("team-m", name, "error").inc()
        metrics.CHILD_CHANGES.labels("team-m", name, "Pod", "create").inc()
    metrics.RECONCILES.labels("other-ns", "gone", "ok").inc()
    assert _series_of("team-m", "gone") > 5

    metrics.forget("team-m", "gone")

    assert _series_of("team-m", "gone") == 0
    assert _series_of("team-m", "kept") > 5
    assert _series_of("other-ns", "gone") > 0
