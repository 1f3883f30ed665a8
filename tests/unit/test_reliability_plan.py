"""The load replay's pure parts: what it sends, and how memory growth and errors are judged."""

from __future__ import annotations

import pytest

from bench.reliability.plan import (
    PlannedRequest,
    memory_growth,
    percentile,
    plan_requests,
    unintended_errors,
)


def test_tokens_are_scaled_capped_and_at_least_one() -> None:
    plan = plan_requests([0.0, 0.5, 2.0], [800, 4000, 3], [16, 900, 2], 1 / 8, 160, 64)
    assert plan == [
        PlannedRequest(0.0, 100, 2),
        PlannedRequest(0.5, 160, 64),
        PlannedRequest(2.0, 1, 1),
    ]


@pytest.mark.parametrize(
    ("scale", "max_prompt", "max_output"), [(0, 10, 10), (-1, 10, 10), (1, 0, 10), (1, 10, 0)]
)
def test_bad_plan_settings_are_refused(scale: float, max_prompt: int, max_output: int) -> None:
    with pytest.raises(ValueError):
        plan_requests([0.0], [1], [1], scale, max_prompt, max_output)


def test_growth_compares_the_medians_of_the_first_and_last_windows() -> None:
    # 100 MB for the first minute (one spike), 104 MB for the last: +4%, the spike is the peak.
    samples = [(t, 100 * 1024) for t in range(0, 60, 5)] + [(30.5, 300 * 1024)]
    samples += [(t, 102 * 1024) for t in range(60, 540, 5)]
    samples += [(t, 104 * 1024) for t in range(540, 605, 5)]
    samples.sort()
    growth = memory_growth(samples, 60)
    assert growth["first_mb"] == 100 and growth["last_mb"] == 104
    assert growth["peak_mb"] == 300
    assert growth["growth"] == pytest.approx(0.04)


def test_growth_of_a_leak_is_large() -> None:
    samples = [(float(t), 100_000 + 500 * t) for t in range(0, 600, 5)]
    assert memory_growth(samples, 60)["growth"] > 1.0


def test_growth_needs_samples() -> None:
    with pytest.raises(ValueError, match="no memory samples"):
        memory_growth([], 60)


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0


def test_only_200_and_the_queue_bound_429_are_intended() -> None:
    assert unintended_errors({"200": 90, "429": 10}) == 0
    assert unintended_errors({"200": 90, "503": 2, "ReadTimeout": 1, "400": 1}) == 4
