"""The gateway's Prometheus series: requests by model and by who served them, requests in flight
to the local replicas, and the ready replicas it last read (the operator's status and the
dashboard read them from /metrics)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "modeldeploy_gateway_requests",
            "Requests per model by who served them (local, overflow, hosted, rejected).",
            ["model", "served_by", "reason"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "modeldeploy_gateway_in_flight",
            "Requests sent to a model's local replicas and not finished.",
            ["model"],
            registry=registry,
        )
        self.ready = Gauge(
            "modeldeploy_gateway_ready_replicas",
            "Ready local replicas per model, as the gateway last read them; -1: unknown.",
            ["model"],
            registry=registry,
        )
        # Metric children by label values: `labels()` takes a lock and builds a tuple per call;
        # the label sets are few (models x outcomes), so each is looked up once.
        self._counts: dict[tuple[str, str, str], Any] = {}
        self._in_flight: dict[str, Any] = {}

    def count(self, model: str, served_by: str, reason: str) -> None:
        key = (model, served_by, reason)
        child = self._counts.get(key)
        if child is None:
            child = self._counts[key] = self.requests.labels(model, served_by, reason)
        child.inc()

    def in_flight_of(self, model: str) -> Any:
        child = self._in_flight.get(model)
        if child is None:
            child = self._in_flight[model] = self.in_flight.labels(model)
        return child
