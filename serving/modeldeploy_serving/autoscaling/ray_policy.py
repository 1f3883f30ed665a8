"""Ray Serve's custom autoscaling hook for the queue-depth policy: a thin adapter over `decide`.

Ray 2.60 instantiates a class named in `autoscaling_config.policy.policy_function` once, with
`policy_kwargs`, and calls it with an `AutoscalingContext` on every control-loop tick; it returns
`(replicas, policy_state)`. Ray wraps it with its own factor, bounds and delay logic (neutral with
the settings from `ray_autoscaling_config`) and, at zero running replicas with requests, scales
to one without calling it. The context is read by attribute, so this module imports no Ray.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .config import AutoscalingConfig
from .policy import PolicyState, QueueSignals, decide
from .ray_config import ENGINE_RUNNING_METRIC, ENGINE_WAITING_METRIC

STATE_KEY = "modeldeploy"
"""Our key in Ray's policy_state dict, which also holds Ray's own delay counters."""

QUEUE_DEPTH_METRIC = "modeldeploy_queue_depth"
"""Gauge the policy sets on every tick; Ray exports it (prefixed `ray_`) from the head node's
metrics port, where the operator reads it for the ModelDeployment's status."""


def _metric_sum(aggregated: Any, name: str) -> float | None:
    if not isinstance(aggregated, Mapping):
        return None
    per_replica = aggregated.get(name)
    if not isinstance(per_replica, Mapping) or not per_replica:
        return None
    return float(sum(float(v) for v in per_replica.values()))


def signals_from_context(ctx: Any) -> QueueSignals:
    """QueueSignals from a Ray Serve `AutoscalingContext`.

    Ray's `total_num_requests` counts everything ongoing at replicas plus what waits at handles,
    and its `total_queued_requests` what waits at handles. A replica's ongoing requests include
    those its engine holds in its waiting queue (reported under ENGINE_WAITING_METRIC), so the
    engine's running count is the replicas' ongoing minus that, unless the replica reports it
    directly (ENGINE_RUNNING_METRIC).
    """
    handle_queued = float(ctx.total_queued_requests or 0.0)
    ongoing_at_replicas = max(0.0, float(ctx.total_num_requests or 0.0) - handle_queued)
    aggregated = ctx.aggregated_metrics
    waiting = _metric_sum(aggregated, ENGINE_WAITING_METRIC) or 0.0
    running = _metric_sum(aggregated, ENGINE_RUNNING_METRIC)
    if running is None:
        running = max(0.0, ongoing_at_replicas - waiting)
    return QueueSignals(
        engine_waiting=waiting,
        handle_queued=handle_queued,
        running=running,
        ready_replicas=int(ctx.current_num_replicas),
    )


class QueueDepthPolicy:
    """The class Ray Serve instantiates (`POLICY_IMPORT_PATH`) and calls with a context."""

    def __init__(self, **policy_kwargs: Any) -> None:
        self.config = AutoscalingConfig.model_validate(policy_kwargs)
        self._gauge: Any = None

    def _current(self, ctx: Any) -> AutoscalingConfig:
        """Our settings with those Ray passes on every call (ray_config.IN_PLACE): the
        deployment's current bounds and target per replica."""
        update: dict[str, Any] = {}
        low = getattr(ctx, "capacity_adjusted_min_replicas", None)
        high = getattr(ctx, "capacity_adjusted_max_replicas", None)
        if low is not None and high is not None:
            update |= {"min_replicas": int(low), "max_replicas": max(int(high), int(low), 1)}
        target = getattr(getattr(ctx, "config", None), "target_ongoing_requests", None)
        if target is not None:
            update["target_queue_depth"] = float(target)
        return self.config.model_copy(update=update) if update else self.config

    def _publish(self, ctx: Any, signals: QueueSignals) -> None:
        # Created lazily, inside the Serve controller: Ray metrics need a connected worker.
        if self._gauge is None:
            from ray.util.metrics import Gauge

            self._gauge = Gauge(
                QUEUE_DEPTH_METRIC,
                description="Requests waiting in engines and Serve queues, per application.",
                tag_keys=("application", "deployment"),
            )
        tags = {
            "application": str(getattr(ctx, "app_name", None) or ""),
            "deployment": str(getattr(ctx, "deployment_name", None) or ""),
        }
        self._gauge.set(signals.queue_depth, tags=tags)

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        now = float(ctx.current_time) if ctx.current_time is not None else time.time()
        ray_state = dict(ctx.policy_state or {})
        state = PolicyState.from_dict(ray_state.get(STATE_KEY))
        # Ray's target (starting replicas included) is what our last decision asked for.
        signals = signals_from_context(ctx)
        self._publish(ctx, signals)
        replicas, state = decide(
            signals, int(ctx.target_num_replicas), self._current(ctx), state, now
        )
        ray_state[STATE_KEY] = state.to_dict()
        return replicas, ray_state
