"""The engine figures a replica reports to the autoscaler, parsed from vLLM's metrics text.

A replica's `record_autoscaling_stats()` returns a dict of numbers that Ray Serve hands to the
policy (`AutoscalingContext.aggregated_metrics`). vLLM publishes its scheduler's queue lengths as
Prometheus gauges; parsing is kept apart from fetching (the replica reads the text however it
hosts the engine), so it is tested on plain strings.
"""

from __future__ import annotations

import math
import re

from .ray_config import ENGINE_RUNNING_METRIC, ENGINE_WAITING_METRIC

VLLM_WAITING = "vllm:num_requests_waiting"
VLLM_RUNNING = "vllm:num_requests_running"
ENGINE_GAUGES = (VLLM_WAITING, VLLM_RUNNING)

# name, optional {labels}, value; timestamps after the value are ignored.
_SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{.*\})?\s+(?P<value>\S+)")


def autoscaling_stats(metrics_text: str) -> dict[str, float]:
    """{ENGINE_WAITING_METRIC: w, ENGINE_RUNNING_METRIC: r} from vLLM's Prometheus text.

    Samples are summed over label sets: one replica may run several engines (data-parallel
    ranks), and each reports its own queue. A gauge absent from the text counts as 0.
    """
    totals = {VLLM_WAITING: 0.0, VLLM_RUNNING: 0.0}
    for line in metrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None or match["name"] not in totals:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        if math.isfinite(value):
            totals[match["name"]] += value
    return {
        ENGINE_WAITING_METRIC: totals[VLLM_WAITING],
        ENGINE_RUNNING_METRIC: totals[VLLM_RUNNING],
    }
