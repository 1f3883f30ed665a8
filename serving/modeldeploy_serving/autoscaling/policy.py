"""The queue-depth autoscaling policy: a pure function of signals, replicas, config, state and time.

Why queue depth: an LLM replica batches many requests, so "ongoing requests per replica" (Ray
Serve's default signal) says little about whether users wait; requests that no engine has
started yet do. The queue is the engines' waiting requests plus the requests held at Serve's
handles and proxies.

Why these rules: a replica's cold start takes tens of seconds to minutes, so the policy reacts to
a queue within `scale_up_stabilization_s` (about a second), sizes the step from the queue, and
removes capacity slowly, one bounded step per `scale_down_delay_s` of low queue. The band
between "low" and "above target" is hysteresis: a queue hovering near the target changes nothing.
Two guards keep a cold start from overshooting or flapping:
- while replicas added earlier are still starting, the backlog that builds meanwhile is already
  being answered, so more are added only when the queue keeps growing geometrically, and then
  only as many as it takes to hold every request in the system at once, at the load per replica
  seen at saturation (sizing by queue/target would buy replicas for a one-off backlog);
- a replica is removed only when the most requests that ran at once during the low-queue
  window fit in the remaining replicas at a fraction of the load per replica last seen at
  saturation, so a low queue that exists only because capacity is exactly sufficient does not
  remove the capacity that keeps it low.

`decide` never reads a clock or does I/O: `now` is a parameter and state goes in and out, so the
same function runs inside Ray Serve's controller, in the trace simulator (bench/autoscale) and in
unit tests with scripted time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from .config import AutoscalingConfig

# Timer comparisons subtract wall-clock floats; without a tolerance a 1.0 s window measured as
# 0.9999999 s would wait one more control-loop tick.
_EPS_S = 1e-6


@dataclass(frozen=True)
class QueueSignals:
    """What the policy sees at one decision."""

    engine_waiting: float = 0.0
    """Sum over replicas of the engine's waiting-queue length (requests no batch holds yet)."""
    handle_queued: float = 0.0
    """Requests queued at Serve handles and proxies, not yet sent to any replica."""
    running: float = 0.0
    """Requests the engines are processing (prefill or decode)."""
    ready_replicas: int | None = None
    """Replicas running and taking requests; None means all of the current replicas."""

    @property
    def queue_depth(self) -> float:
        """Requests waiting anywhere."""
        return max(0.0, self.engine_waiting) + max(0.0, self.handle_queued)

    @property
    def total(self) -> float:
        """Requests in the system, waiting or running; 0 means idle."""
        return self.queue_depth + max(0.0, self.running)


@dataclass(frozen=True)
class PolicyState:
    """What the policy remembers between decisions; plain values, so it serialises to JSON."""

    above_since: float | None = None
    """Since when the queue per replica has been above target (None: it is not)."""
    low_since: float | None = None
    """Since when the queue has been low, counted afresh after each scale step."""
    peak_running: float = 0.0
    """The most running requests seen since `low_since`: scale-down sizes for the peak."""
    idle_since: float | None = None
    """Since when there has been no request at all, waiting or running."""
    last_scale_up_at: float | None = None
    last_scale_down_at: float | None = None
    queue_at_last_scale_up: float = 0.0
    """The queue the last scale-up was sized for."""
    saturated_running_per_replica: float | None = None
    """Running requests per ready replica last seen while the queue was above target."""
    reason: str = ""
    """Why the last decision changed or kept the replica count (for logs and status)."""

    def to_dict(self) -> dict[str, float | str | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object] | None) -> PolicyState:
        """Rebuild from `to_dict` output; unknown keys and ill-typed values are ignored."""
        if not data:
            return cls()
        values: dict[str, object] = {}
        for f in fields(cls):
            value = data.get(f.name)
            if f.name == "reason":
                if isinstance(value, str):
                    values[f.name] = value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                values[f.name] = float(value)
        return cls(**values)  # type: ignore[arg-type]


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def decide(
    signals: QueueSignals,
    current_replicas: int,
    config: AutoscalingConfig,
    state: PolicyState,
    now: float,
) -> tuple[int, PolicyState]:
    """The replica count to run now, and the state for the next decision.

    `current_replicas` is the count the autoscaler last asked for (starting replicas included);
    `signals.ready_replicas` tells how many of them already take requests.
    """
    low_bound, high_bound = config.min_replicas, config.max_replicas
    n = max(0, current_replicas)
    queue = signals.queue_depth
    running = max(0.0, signals.running)
    ready = n if signals.ready_replicas is None else _clamp(signals.ready_replicas, 0, n)
    target = config.target_queue_depth

    idle_since = (
        None if signals.total > 0 else (now if state.idle_since is None else state.idle_since)
    )
    saturated = state.saturated_running_per_replica
    if ready > 0 and running > 0 and queue > target * ready:
        # Ready replicas with a queue above target are full: what they run is their capacity for
        # today's mix of prompt and output lengths.
        saturated = running / ready
    state = replace(state, idle_since=idle_since, saturated_running_per_replica=saturated)

    if n < low_bound or n > high_bound:
        bounded = _clamp(n, low_bound, high_bound)
        return bounded, _after_step(state, bounded > n, now, queue, "outside min/max")

    if n == 0:
        if signals.total > 0:
            # Nothing can serve the queue: one replica at once, no stabilization wait.
            return 1, _after_step(state, True, now, queue, "request while at zero")
        return 0, replace(state, reason="idle at zero")

    per_replica = queue / n
    above = per_replica > target
    low = per_replica <= target * config.scale_down_queue_ratio

    if not above:
        state = replace(state, above_since=None)
    elif state.above_since is None:
        state = replace(state, above_since=now)
    if not low:
        state = replace(state, low_since=None, peak_running=0.0)
    elif state.low_since is None:
        state = replace(state, low_since=now, peak_running=running)
    else:
        state = replace(state, peak_running=max(state.peak_running, running))

    if state.above_since is not None and now - state.above_since + _EPS_S >= (
        config.scale_up_stabilization_s
    ):
        return _maybe_scale_up(signals, n, ready, config, state, now)

    # Never to zero while a replica is still starting: its cold start would be thrown away,
    # and the request it was started for may be about to arrive again (a client retrying).
    if (
        low_bound == 0
        and ready >= n
        and idle_since is not None
        and now - idle_since + _EPS_S >= config.scale_to_zero_after_s
    ):
        new = max(0, n - config.max_scale_down_step)
        return new, _after_step(state, False, now, queue, "idle")

    if state.low_since is not None and now - state.low_since + _EPS_S >= config.scale_down_delay_s:
        return _maybe_scale_down(n, running, config, state, now, queue)

    return n, replace(state, reason="hold")


def _maybe_scale_up(
    signals: QueueSignals,
    n: int,
    ready: int,
    config: AutoscalingConfig,
    state: PolicyState,
    now: float,
) -> tuple[int, PolicyState]:
    queue = signals.queue_depth
    starting = ready < n
    if starting and queue < config.pending_growth_factor * state.queue_at_last_scale_up:
        return n, replace(state, reason="replicas starting")
    if n >= config.max_replicas:
        return n, replace(state, reason="at max_replicas")
    # Enough replicas to bring the queue per replica back to the target, in bounded steps.
    wanted = math.ceil(queue / config.target_queue_depth)
    saturated = state.saturated_running_per_replica
    if starting and saturated is not None and saturated > 0:
        # A backlog built up during a cold start is a one-off: once replicas are up, each takes
        # about `saturated` requests at once, so more than enough to hold every request in the
        # system at once would only be removed again later.
        held = math.ceil((queue + max(0.0, signals.running)) / saturated)
        wanted = min(wanted, max(held, n + 1))
    step = min(max(wanted - n, 1), config.max_scale_up_step)
    new = min(config.max_replicas, n + step)
    return new, _after_step(state, True, now, queue, "queue above target")


def _maybe_scale_down(
    n: int,
    running: float,
    config: AutoscalingConfig,
    state: PolicyState,
    now: float,
    queue: float,
) -> tuple[int, PolicyState]:
    floor = max(config.min_replicas, 1)
    if n <= floor:
        return n, replace(state, reason="at min_replicas")
    if state.last_scale_up_at is not None and now - state.last_scale_up_at + _EPS_S < (
        config.scale_down_delay_s
    ):
        return n, replace(state, reason="recent scale-up")
    step = min(config.max_scale_down_step, n - floor)
    saturated = state.saturated_running_per_replica
    if saturated is not None:
        limit = config.scale_down_utilization * saturated
        # Sized for the busiest moment of the low window, not the current lull (as an HPA's
        # scale-down stabilization keeps the highest recommendation of its window).
        while step > 0 and state.peak_running / (n - step) > limit:
            step -= 1
    if step == 0:
        # Judge again one delay from now on the peak of that window only, so a load that has
        # since fallen is not held against the fleet forever.
        return n, replace(
            state, low_since=now, peak_running=running, reason="load needs current replicas"
        )
    return n - step, _after_step(state, False, now, queue, "queue low")


def _after_step(state: PolicyState, up: bool, now: float, queue: float, reason: str) -> PolicyState:
    # Every step restarts both windows: the next step is judged on what the new count does. A
    # step down happens on a low queue, so the low window restarts at once from this decision.
    state = replace(state, above_since=None, reason=reason)
    if up:
        return replace(state, low_since=None, last_scale_up_at=now, queue_at_last_scale_up=queue)
    return replace(state, low_since=now, peak_running=0.0, last_scale_down_at=now)
