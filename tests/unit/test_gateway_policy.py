"""The gateway's routing decision (local, overflow, 429), over every combination of its inputs."""

from __future__ import annotations

import itertools

import pytest

from modeldeploy_serving.gateway.policy import (
    DEFAULT_RETRY_AFTER_S,
    MAX_RETRY_AFTER_S,
    LocalLoad,
    OverflowRule,
    decide,
    estimated_wait_s,
    next_service_time,
    retry_after_s,
)

WHENS: list[tuple[str, ...]] = [(), ("ColdStart",), ("Saturated",), ("ColdStart", "Saturated")]
RULES = [None] + [OverflowRule(when, bound) for when in WHENS for bound in (0.0, 1.0, 30.0)]
LOADS = [
    LocalLoad(ready, in_flight, slots, service, max_queued)
    for ready, in_flight, slots, service, max_queued in itertools.product(
        (0, 1, 3), (0, 1, 2, 4, 7, 20), (1, 2, 4), (None, 0.25, 2.0), (-1, 0, 3)
    )
]
GRID = list(itertools.product(LOADS, RULES, (False, True), (False, True)))


def _may_overflow(rule: OverflowRule | None, local_only: bool, forbidden: bool) -> bool:
    return rule is not None and not local_only and not forbidden


@pytest.mark.parametrize(
    ("ready", "in_flight", "slots", "service", "expected"),
    [
        (0, 0, 4, 1.0, None),  # cold: unknown
        (1, 3, 4, None, 0.0),  # a free slot: no wait, even before any measure
        (1, 4, 4, None, None),  # must queue, no measure yet
        (1, 4, 4, 2.0, 0.5),  # first in queue: one slot of four frees in 2/4 s
        (2, 10, 4, 2.0, 0.75),  # capacity 8, two ahead: (2 + 1) x 2 / 8
    ],
)
def test_estimated_wait(
    ready: int, in_flight: int, slots: int, service: float | None, expected: float | None
) -> None:
    assert estimated_wait_s(LocalLoad(ready, in_flight, slots, service)) == expected


def _check(load: LocalLoad, rule: OverflowRule | None, local_only: bool, forbidden: bool) -> None:
    decision = decide(load, rule, local_only, forbidden)
    may = _may_overflow(rule, local_only, forbidden)
    wait = estimated_wait_s(load)
    free_slot = load.in_flight < load.capacity
    full = load.max_queued_requests >= 0 and load.queued >= load.max_queued_requests
    assert decision.estimated_wait_s == wait
    if decision.target == "overflow":
        # Only where overflow is allowed, and only for a listed cause.
        assert may and rule is not None and decision.reason in rule.when
    if free_slot:
        assert (decision.target, decision.reason) == ("local", "Ready")
    if load.capacity == 0:
        cold_overflow = may and rule is not None and "ColdStart" in rule.when
        assert (decision.target == "overflow") == cold_overflow
        assert decision.reason in ("ColdStart", "QueueFull")
    else:
        over = rule is not None and (full or wait is None or wait > rule.max_queue_wait_s)
        saturated = may and rule is not None and "Saturated" in rule.when and over
        assert (decision.target == "overflow") == (saturated and not free_slot)
    if decision.target == "reject":
        assert full and not free_slot and decision.reason == "QueueFull"
        assert decision.retry_after_s is not None
        assert 1 <= decision.retry_after_s <= MAX_RETRY_AFTER_S
    else:
        assert decision.retry_after_s is None
    if decision.target == "local":
        assert free_slot or not full


def test_every_combination_obeys_the_rules() -> None:
    """About 25,000 combinations; a failure names the one that broke."""
    for load, rule, local_only, forbidden in GRID:
        try:
            _check(load, rule, local_only, forbidden)
        except AssertionError as exc:
            raise AssertionError(
                f"{load} {rule} local_only={local_only} forbidden={forbidden}"
            ) from exc


def test_local_only_never_leaves_even_when_every_cause_holds() -> None:
    rule = OverflowRule(("ColdStart", "Saturated"), 0.0)
    for load in LOADS:
        assert decide(load, rule, local_only=True).target != "overflow"
        assert decide(load, rule, overflow_forbidden=True).target != "overflow"


def test_saturation_overflows_past_the_bound_only() -> None:
    rule = OverflowRule(("Saturated",), 1.0)
    # One replica of 2 slots, 0.8 s per request: the first queued request waits 0.4 s.
    within = LocalLoad(1, 2, 2, 0.8)
    assert decide(within, rule).target == "local"
    # Three ahead in the queue: (3 + 1) x 0.8 / 2 = 1.6 s > 1 s.
    beyond = LocalLoad(1, 5, 2, 0.8)
    assert (decide(beyond, rule).target, decide(beyond, rule).reason) == ("overflow", "Saturated")


def test_cold_start_holds_locally_unless_listed() -> None:
    cold = LocalLoad(0, 0, 4, None)
    assert decide(cold, OverflowRule(("Saturated",), 5.0)).target == "local"
    assert decide(cold, OverflowRule(("ColdStart",), 5.0)).target == "overflow"


def test_a_full_queue_overflows_even_within_the_bound() -> None:
    # Fast requests: the fifth waiter would start within the bound, but no room is left.
    load = LocalLoad(1, 6, 2, 0.1, max_queued_requests=4)
    assert decide(load, OverflowRule(("Saturated",), 5.0)).target == "overflow"
    assert decide(load, OverflowRule(("ColdStart",), 5.0)).target == "reject"


def test_queue_full_rejects_with_retry_after() -> None:
    # One replica of 2 slots, 1 s each, 3 may wait: 5 in flight means 3 waiting, full.
    load = LocalLoad(1, 5, 2, 1.0, max_queued_requests=3)
    decision = decide(load, None, local_only=True)
    assert (decision.target, decision.reason) == ("reject", "QueueFull")
    assert decision.retry_after_s == 1  # one slot frees in 0.5 s: at least a second
    cold = decide(LocalLoad(0, 3, 2, None, max_queued_requests=3), None)
    assert cold.target == "reject" and cold.retry_after_s == DEFAULT_RETRY_AFTER_S


def test_retry_after_is_bounded() -> None:
    slow = LocalLoad(1, 500, 1, 30.0, max_queued_requests=0)
    assert retry_after_s(slow) == MAX_RETRY_AFTER_S


def test_service_time_average() -> None:
    assert next_service_time(None, 2.0) == 2.0
    assert next_service_time(2.0, 1.0) == pytest.approx(1.8)
    with pytest.raises(ValueError, match="sample_s"):
        next_service_time(1.0, -0.1)
