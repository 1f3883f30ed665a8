"""The engine figures a replica reports to the autoscaler, parsed from vLLM's metrics text.

A replica's `record_autoscaling_stats()` returns a dict of numbers that Ray Serve hands to the
policy (`AutoscalingContext.aggregated_metrics`). vLLM publishes its scheduler's queue lengths as
Prometheus gauges; parsing is kept apart from fetching (the replica reads the text however it
hosts the engine), so it is tested on plain strings.
"""

from __future__ import annotations

from ..prometheus_text import matching
from .ray_config import ENGINE_RUNNING_METRIC, ENGINE_WAITING_METRIC

VLLM_WAITING = "vllm:num_requests_waiting"
VLLM_RUNNING = "vllm:num_requests_running"
ENGINE_GAUGES = (VLLM_WAITING, VLLM_RUNNING)


def autoscaling_stats(metrics_text: str) -> dict[str, float]:
    """{ENGINE_WAITING_METRIC: w, ENGINE_RUNNING_METRIC: r} from vLLM's Prometheus text.

    Samples are summed over label sets: one replica may run several engines (data-parallel
    ranks), and each reports its own queue. A gauge absent from the text counts as 0.
    """
    totals = {VLLM_WAITING: 0.0, VLLM_RUNNING: 0.0}
    for sample in matching(metrics_text, ENGINE_GAUGES):
        totals[sample.name] += sample.value
    return {
        ENGINE_WAITING_METRIC: totals[VLLM_WAITING],
        ENGINE_RUNNING_METRIC: totals[VLLM_RUNNING],
    }
