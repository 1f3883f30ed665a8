"""Where one request goes: the local replicas, the overflow provider, or back with a 429.

`decide` is pure: it gets what the gateway knows at the request's arrival (ready local replicas,
the requests it has sent to them and not yet seen finish, their measured service time) and the
settings, and returns a `Decision`. Every input is a parameter, so the unit tests enumerate the
cases and the gateway only gathers the inputs and carries the decision out.

Why it decides at arrival, from an estimate, instead of holding the request and watching: a
request that will overflow then goes at once, rather than paying the bound first and the
provider's latency after. The estimate is the one continuous batching suggests: each replica
runs `slots_per_replica` requests at once (the engine's batch); beyond that, requests queue, and
slots free at `capacity / service_time` per second, so the request at queue position q (0-based)
starts after about (q + 1) x service_time / capacity.

Why the rules:
- No ready replica (ColdStart): with `ColdStart` in `when`, the request goes to the provider; a
  cold start takes tens of seconds to minutes, longer than any useful bound. Otherwise Serve
  holds it through the cold start, as without a gateway.
- A queue whose wait would exceed `max_queue_wait_s`, or that is full (Saturated): with
  `Saturated` in `when`, the provider. An unknown service time (no local request has finished
  yet) counts as over the bound: keeping such a request local would promise nothing.
- Whatever cannot overflow (no overflow configured, `localOnly`, a request header that forbids
  it, or a cause not in `when`) stays local until the local queue holds `max_queued_requests`;
  beyond that it gets 429 with Retry-After, the same bound Serve itself enforces behind the
  gateway, answered earlier and as an OpenAI error object.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from .config import LocalRoute

Target = Literal["local", "overflow", "reject"]
Reason = Literal["Ready", "ColdStart", "Saturated", "QueueFull"]
OverflowCause = Literal["ColdStart", "Saturated"]

# Retry-After when the wait cannot be estimated (a cold start); Serve's own backpressure value.
DEFAULT_RETRY_AFTER_S = 5
MAX_RETRY_AFTER_S = 60
# Weight of the newest sample in the service-time average: about the last ten requests count.
SERVICE_TIME_WEIGHT = 0.2


@dataclass(frozen=True)
class LocalLoad:
    """What the gateway knows about one model's local replicas at a request's arrival."""

    ready_replicas: int
    """Replicas running and taking requests (from Serve's own view of the application)."""
    in_flight: int
    """Requests the gateway has sent to the replicas and not yet seen finish."""
    slots_per_replica: int
    """Requests one replica runs at once: the engine's batch (max_num_seqs)."""
    service_time_s: float | None
    """Average duration of a local request that did not queue; None before the first one."""
    max_queued_requests: int = -1
    """Requests that may wait locally beyond the running ones; -1 for no limit."""

    @property
    def capacity(self) -> int:
        return max(0, self.ready_replicas) * max(1, self.slots_per_replica)

    @property
    def queued(self) -> int:
        """Requests already waiting locally for a slot."""
        return max(0, self.in_flight - self.capacity)


@dataclass(frozen=True)
class OverflowRule:
    """When requests of one model may go to its provider."""

    when: Collection[OverflowCause]
    max_queue_wait_s: float


@dataclass(frozen=True)
class Decision:
    target: Target
    reason: Reason
    estimated_wait_s: float | None = None
    """Expected local queue wait for this request; None when unknown (cold start)."""
    retry_after_s: int | None = None
    """Set on reject: when a slot of the local queue is expected to free."""


def estimated_wait_s(load: LocalLoad) -> float | None:
    """Expected wait before a new request starts locally; None when it cannot be estimated."""
    if load.capacity == 0:
        return None
    if load.in_flight < load.capacity:
        return 0.0
    if load.service_time_s is None:
        return None
    return (load.queued + 1) * load.service_time_s / load.capacity


def retry_after_s(load: LocalLoad) -> int:
    """Seconds until the local queue is expected to have room again, 1 to MAX_RETRY_AFTER_S."""
    if load.capacity == 0 or load.service_time_s is None:
        return DEFAULT_RETRY_AFTER_S
    over = load.queued - max(0, load.max_queued_requests) + 1
    seconds = math.ceil(max(1, over) * load.service_time_s / load.capacity)
    return min(MAX_RETRY_AFTER_S, max(1, seconds))


def _queue_full(load: LocalLoad) -> bool:
    """True when a new request would wait beyond `max_queued_requests` others."""
    return load.max_queued_requests >= 0 and load.queued >= load.max_queued_requests


def decide(
    load: LocalLoad,
    overflow: OverflowRule | None,
    local_only: bool = False,
    overflow_forbidden: bool = False,
) -> Decision:
    """Local, overflow or reject for one request (see the module docstring for why)."""
    may_overflow = overflow is not None and not local_only and not overflow_forbidden
    wait = estimated_wait_s(load)
    if load.capacity == 0:
        if may_overflow and overflow is not None and "ColdStart" in overflow.when:
            return Decision("overflow", "ColdStart", wait)
        if _queue_full(load):
            return Decision("reject", "QueueFull", wait, retry_after_s(load))
        return Decision("local", "ColdStart", wait)
    if wait == 0.0:
        return Decision("local", "Ready", wait)
    full = _queue_full(load)
    # A full local queue is saturation too, whatever the estimate says.
    over_bound = overflow is not None and (full or wait is None or wait > overflow.max_queue_wait_s)
    if may_overflow and overflow is not None and "Saturated" in overflow.when and over_bound:
        return Decision("overflow", "Saturated", wait)
    if full:
        return Decision("reject", "QueueFull", wait, retry_after_s(load))
    return Decision("local", "Saturated" if over_bound else "Ready", wait)


def next_service_time(previous: float | None, sample_s: float) -> float:
    """The service-time average after one more local request that did not queue.

    Only requests that started at once are sampled: a queued request's duration includes its
    wait, and feeding waits back into the estimate would inflate it under load (more overflow,
    which empties the queue, which then looks slow for no reason).
    """
    if sample_s < 0:
        raise ValueError(f"sample_s must be >= 0, got {sample_s}")
    if previous is None:
        return sample_s
    return (1 - SERVICE_TIME_WEIGHT) * previous + SERVICE_TIME_WEIGHT * sample_s


@dataclass
class ModelState:
    """What the gateway knows about one local model between requests."""

    ready_replicas: int | None = None
    """None until read, and after a failed read: unknown."""
    in_flight: int = 0
    service_time_s: float | None = None
    waking: bool = False


def route_decision(route: LocalRoute, state: ModelState, forbidden: bool) -> Decision:
    """The policy's decision for one request of `route`.

    Replicas that could not be read count as one ready replica: the request then goes
    local, where Serve holds it if need be. Reading "unknown" as "cold" would send every
    request of a healthy model to the provider while its dashboard is unreachable.
    """
    ready = 1 if state.ready_replicas is None else state.ready_replicas
    load = LocalLoad(
        ready_replicas=ready,
        in_flight=state.in_flight,
        slots_per_replica=route.slots_per_replica,
        service_time_s=state.service_time_s,
        max_queued_requests=route.waiting_room(ready),
    )
    rule = None
    if route.overflow is not None:
        rule = OverflowRule(route.overflow.when, route.overflow.max_queue_wait_s)
    return decide(load, rule, route.local_only, forbidden)
