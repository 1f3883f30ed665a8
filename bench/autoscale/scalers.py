"""The scalers compared: ours (the serving layer's `decide`) and three baselines.

Each baseline is modelled from its documented algorithm and default intervals, including how
late its metric arrives:
- Ray Serve's default policy (ray 2.60 `replica_queue_length_autoscaling_policy`): replicas and
  handles push ongoing-request counts every 10 s, the controller averages them over a 30 s
  look-back, wants `ongoing / target_ongoing_requests` (2) replicas, and applies a change only
  after wanting it for `upscale_delay_s` (30 s) or `downscale_delay_s` (600 s) in a row.
- An HPA on a per-pod metric (running requests per replica, as exported by vLLM and scraped by
  Prometheus every 15 s), synced every 15 s: `ceil(current * value / target)` with a 10%
  tolerance, scale-up at most max(100%, 4 pods) per sync, scale-down to the highest
  recommendation of the last 300 s.
- KEDA's Prometheus scaler on waiting requests (vllm:num_requests_waiting, summed), polled every
  15 s, AverageValue threshold 5 per replica, feeding the same HPA machinery.
Ours sees the engines' waiting queues and the handles' queue pushed every 0.5 s with a 1 s
look-back (what `metric_push_env` and `ray_autoscaling_config` set) and decides every 0.5 s.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from modeldeploy_serving.autoscaling import AutoscalingConfig, PolicyState, QueueSignals, decide

from .sim import History


def _pushed(now: float, interval: float) -> float:
    """The time of the last metric push at or before `now`."""
    return math.floor(now / interval + 1e-9) * interval


@dataclass
class QueueDepthScaler:
    config: AutoscalingConfig
    push_interval_s: float = 0.5
    look_back_s: float = 1.0
    interval_s: float = 0.5
    name: str = "queue-depth (ours)"
    state: PolicyState = field(default_factory=PolicyState)

    def decide(self, history: History, current: int, ready: int, now: float) -> int:
        end = _pushed(now, self.push_interval_s)
        signals = QueueSignals(
            engine_waiting=history.mean("engine_waiting", end, self.look_back_s),
            handle_queued=history.mean("handle_queued", end, self.look_back_s),
            running=history.mean("running", end, self.look_back_s),
            ready_replicas=ready,
        )
        replicas, self.state = decide(signals, current, self.config, self.state, now)
        return replicas


@dataclass
class RayDefaultScaler:
    min_replicas: int
    max_replicas: int
    target_ongoing_requests: float = 2.0
    push_interval_s: float = 10.0
    look_back_s: float = 30.0
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    interval_s: float = 0.25
    name: str = "Ray Serve default"
    _direction: int = 0
    _since: float | None = None

    def decide(self, history: History, current: int, ready: int, now: float) -> int:
        end = _pushed(now, self.push_interval_s)
        ongoing = sum(
            history.mean(name, end, self.look_back_s)
            for name in ("running", "engine_waiting", "handle_queued")
        )
        if ready == 0 and ongoing > 0:
            # Ray's cold-start path: at zero running replicas any request means scale now.
            return max(1, current)
        desired = math.ceil(ongoing / self.target_ongoing_requests) if ready else current
        desired = max(self.min_replicas, min(self.max_replicas, desired))
        direction = (desired > current) - (desired < current)
        if direction == 0:
            self._direction, self._since = 0, None
            return current
        if direction != self._direction or self._since is None:
            self._direction, self._since = direction, now
        delay = self.upscale_delay_s if direction > 0 else self.downscale_delay_s
        if now - self._since + 1e-6 >= delay:
            self._direction, self._since = 0, None
            return desired
        return current


@dataclass
class HpaScaler:
    """Kubernetes HPA (autoscaling/v2 defaults) on one per-replica metric."""

    min_replicas: int
    max_replicas: int
    metric: str
    """`running` (per-replica average) or `waiting` (engine + handle queue, summed)."""
    target: float
    name: str
    scrape_interval_s: float = 15.0
    interval_s: float = 15.0
    tolerance: float = 0.1
    down_stabilization_s: float = 300.0
    _recommendations: deque[tuple[float, int]] = field(default_factory=deque)

    def _value(self, history: History, now: float) -> float:
        scraped = _pushed(now, self.scrape_interval_s)
        if self.metric == "running":
            return history.at("running", scraped)
        return history.at("engine_waiting", scraped) + history.at("handle_queued", scraped)

    def decide(self, history: History, current: int, ready: int, now: float) -> int:
        total = self._value(history, now)
        if ready == 0:
            return max(current, self.min_replicas, 1 if total > 0 else 0)
        # Per-pod metrics are averaged over the pods that report them (the ready ones).
        ratio = (total / ready) / self.target
        recommended = current if abs(ratio - 1.0) <= self.tolerance else math.ceil(ready * ratio)
        recommended = max(self.min_replicas, min(self.max_replicas, recommended))
        self._recommendations.append((now, recommended))
        while self._recommendations and self._recommendations[0][0] < (
            now - self.down_stabilization_s
        ):
            self._recommendations.popleft()
        if recommended > current:
            return min(recommended, max(2 * current, current + 4), self.max_replicas)
        # Scale-down stabilization: the highest recommendation within the window.
        return min(current, max(r for _, r in self._recommendations))


def hpa_running(min_replicas: int, max_replicas: int, target_running: float) -> HpaScaler:
    return HpaScaler(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        metric="running",
        target=target_running,
        name=f"HPA (running/replica, target {target_running:g})",
    )


def keda_waiting(min_replicas: int, max_replicas: int, threshold: float = 5.0) -> HpaScaler:
    return HpaScaler(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        metric="waiting",
        target=threshold,
        name=f"KEDA (waiting, threshold {threshold:g})",
    )
