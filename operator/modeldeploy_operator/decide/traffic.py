"""Local vs overflow traffic of a model, from the gateway's Prometheus counters (pure).

The gateway counts every request by who served it (`modeldeploy_gateway_requests_total`, labels
model, served_by, reason). The status shows those counts and the overflow rate, so
`kubectl get md` tells how much of a model's traffic left the cluster. Parsing is kept apart from
fetching (the operator scrapes the gateway's /metrics), as with the queue-depth gauge.
"""

from __future__ import annotations

from dataclasses import dataclass

from modeldeploy_serving.prometheus_text import matching

REQUESTS_METRIC = "modeldeploy_gateway_requests_total"


@dataclass(frozen=True)
class TrafficCounts:
    local: int = 0
    overflow: int = 0
    rejected: int = 0


def traffic_from_metrics(text: str, model: str) -> TrafficCounts:
    """The gateway's request counts for one model (served model name) in Prometheus text."""
    totals = {"local": 0.0, "overflow": 0.0, "rejected": 0.0}
    for sample in matching(text, {REQUESTS_METRIC}, model=model):
        served_by = sample.labels.get("served_by", "")
        if served_by in totals:
            totals[served_by] += sample.value
    return TrafficCounts(*(round(totals[k]) for k in ("local", "overflow", "rejected")))


def overflow_percent(counts: TrafficCounts) -> float | None:
    """Share of served requests that overflowed, in percent with one decimal; None for none.

    Rejected requests are left out: they were served by no one, and a burst of 429s under
    localOnly must not read as traffic that left.
    """
    served = counts.local + counts.overflow
    if served == 0:
        return None
    return round(100.0 * counts.overflow / served, 1)


def traffic_status(counts: TrafficCounts) -> dict[str, int | float]:
    """The status.traffic object for `counts`."""
    status: dict[str, int | float] = {
        "local": counts.local,
        "overflow": counts.overflow,
        "rejected": counts.rejected,
    }
    percent = overflow_percent(counts)
    if percent is not None:
        status["overflowPercent"] = percent
    return status
