"""Smoke test of the autoscaling simulator (bench/autoscale): short windows, synthetic bursts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.autoscale.__main__ import main
from bench.autoscale.report import direction_changes, summarise
from bench.autoscale.scalers import QueueDepthScaler, RayDefaultScaler, hpa_running, keda_waiting
from bench.autoscale.service import Calibration, load_calibration
from bench.autoscale.sim import simulate
from bench.autoscale.trace import DEFAULT_TRACE, Trace, load_trace
from modeldeploy_serving.autoscaling import AutoscalingConfig

CAL = load_calibration()


def _burst_trace() -> Trace:
    # One request every 5 s for 60 s (under one ongoing request on average, so no scaler moves),
    # then 12 requests/s for 60 s (several replicas' worth), then quiet.
    calm = np.arange(0.0, 60.0, 5.0)
    burst = 60.0 + np.arange(0.0, 60.0, 1.0 / 12)
    arrival = np.concatenate([calm, burst])
    return Trace(
        arrival_s=arrival,
        prompt_tokens=np.full(len(arrival), 1000.0),
        output_tokens=np.full(len(arrival), 200.0),
        source="synthetic burst",
    )


def _first_scale_up(decisions: list[tuple[float, int]], start: int) -> float:
    return next(t for t, n in decisions if n > start)


def test_trace_window_and_speedup() -> None:
    full = load_trace(DEFAULT_TRACE)
    assert len(full) == 19366
    assert full.arrival_s[0] == 0.0 and np.all(np.diff(full.arrival_s) >= 0)
    window = load_trace(DEFAULT_TRACE, start_s=600, duration_s=120, speedup=2)
    inside = (full.arrival_s >= 600) & (full.arrival_s < 720)
    assert len(window) == int(inside.sum())
    assert window.duration_s <= 60.0
    np.testing.assert_allclose(window.arrival_s, (full.arrival_s[inside] - 600) / 2)
    np.testing.assert_array_equal(window.prompt_tokens, full.prompt_tokens[inside])


def test_calibration_derives_a_sublinear_batch_curve(tmp_path: Path) -> None:
    def rate(cal: Calibration, b: int) -> float:
        return b / (cal.step_overhead_s + cal.per_seq_s * b)

    assert rate(CAL, 1) == pytest.approx(CAL.single_stream_decode_tokens_per_s)
    assert rate(CAL, CAL.max_num_seqs) == pytest.approx(CAL.saturated_decode_tokens_per_s)
    assert rate(CAL, 2) < 2 * rate(CAL, 1)
    path = tmp_path / "cal.json"
    path.write_text(
        json.dumps(
            {
                "name": "too-fast",
                "single_stream_decode_tokens_per_s": 10,
                "saturated_decode_tokens_per_s": 10_000,
                "prefill_tokens_per_s": 1000,
                "max_num_seqs": 8,
            }
        )
    )
    with pytest.raises(ValueError, match="between the single-stream rate"):
        load_calibration(path)


def test_short_window_of_the_trace_under_every_scaler() -> None:
    trace = load_trace(DEFAULT_TRACE, duration_s=120)
    config = AutoscalingConfig(min_replicas=1, max_replicas=8)
    for scaler in (
        QueueDepthScaler(config),
        RayDefaultScaler(min_replicas=1, max_replicas=8),
        hpa_running(1, 8, 32),
        keda_waiting(1, 8),
    ):
        result = simulate(trace, CAL, scaler, min_replicas=1, dt=0.5)
        s = summarise(result, slo_ttft_s=2.0, start_replicas=1)
        assert s["requests"] == len(trace) and s["unanswered"] == 0, scaler.name
        assert 0.0 <= s["slo_attainment"] <= 1.0
        for key in ("queue_wait_s", "ttft_s"):
            p = s[key]
            assert 0.0 <= p["p50"] <= p["p95"] <= p["p99"] <= p["max"], (scaler.name, key)
        # Time to first token includes the prefill, so it is never below the wait.
        assert np.all(result.ttft_s >= result.queue_wait_s - 1e-9)
        assert 1 <= s["max_replicas"] <= 8
        assert s["replica_seconds"] >= result.history.size * 0.5 - 1e-6


def test_ours_reacts_faster_than_ray_defaults_on_a_burst() -> None:
    trace = _burst_trace()
    config = AutoscalingConfig(min_replicas=1, max_replicas=8, scale_down_delay_s=300)
    ours = simulate(trace, CAL, QueueDepthScaler(config), min_replicas=1, dt=0.25)
    ray = simulate(trace, CAL, RayDefaultScaler(min_replicas=1, max_replicas=8), min_replicas=1)
    ours_up = _first_scale_up(ours.decisions, 1)
    ray_up = _first_scale_up(ray.decisions, 1)
    # Ours: within a few seconds of the burst at t=60. Ray: 30 s of upscale delay at least,
    # on metrics that arrive every 10 s.
    assert 60.0 < ours_up < 66.0
    assert ray_up >= ours_up + 25.0
    s_ours = summarise(ours, slo_ttft_s=2.0, start_replicas=1)
    s_ray = summarise(ray, slo_ttft_s=2.0, start_replicas=1)
    assert s_ours["queue_wait_s"]["p99"] < s_ray["queue_wait_s"]["p99"]
    assert s_ours["direction_changes"] <= 1


def test_direction_changes_counts_reversals() -> None:
    assert direction_changes([(1, 2), (2, 3), (3, 2), (4, 1), (5, 3)], 1) == 2
    assert direction_changes([], 1) == 0


def test_command_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert main(["--duration", "60", "--no-plot", "--json", str(out), "--dt", "0.5"]) == 0
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"ours", "ray", "hpa", "keda"}
    assert report["trace"]["requests"] == len(load_trace(DEFAULT_TRACE, duration_s=60))
