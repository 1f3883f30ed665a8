"""The queue-depth policy over scripted signal sequences with controlled time.

Each script is a function of (time, current replicas) -> signals, replayed on a 0.5 s tick (the
metric push interval the serving layer sets). Expected numbers follow from the rules in
modeldeploy_serving/autoscaling/policy.py and the config below.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import subprocess
import sys
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from modeldeploy_operator.api.spec import ScalingSpec
from modeldeploy_serving.autoscaling import (
    ENGINE_RUNNING_METRIC,
    ENGINE_WAITING_METRIC,
    POLICY_IMPORT_PATH,
    AutoscalingConfig,
    PolicyState,
    QueueSignals,
    autoscaling_stats,
    decide,
    metric_push_env,
    ray_autoscaling_config,
)
from modeldeploy_serving.autoscaling.ray_config import IN_PLACE
from modeldeploy_serving.autoscaling.ray_policy import (
    STATE_KEY,
    QueueDepthPolicy,
    signals_from_context,
)

TICK = 0.5
CFG = AutoscalingConfig(
    min_replicas=1,
    max_replicas=10,
    target_queue_depth=2,
    scale_up_stabilization_s=1,
    scale_down_delay_s=60,
    scale_to_zero_after_s=120,
    max_scale_up_step=4,
    max_scale_down_step=1,
)

Script = Callable[[float, int], QueueSignals]


def replay(
    script: Script, start: int, until: float, config: AutoscalingConfig = CFG
) -> list[tuple[float, int]]:
    """(time, replicas after the decision at that time) for every tick in [0, until]."""
    n, state, out = start, PolicyState(), []
    for i in range(int(until / TICK) + 1):
        t = i * TICK
        n, state = decide(script(t, n), n, config, state, t)
        out.append((t, n))
    return out


def changes(trace: list[tuple[float, int]], start: int) -> list[tuple[float, int]]:
    """The (time, new replicas) of every decision that changed the count."""
    out, prev = [], start
    for t, n in trace:
        if n != prev:
            out.append((t, n))
        prev = n
    return out


def direction_changes(trace: list[tuple[float, int]], start: int) -> int:
    steps = [b - a for (_, a), (_, b) in zip([(0.0, start), *trace], trace, strict=False) if b != a]
    return sum(1 for a, b in itertools.pairwise(steps) if (a > 0) != (b > 0))


def test_burst_scales_within_the_stabilization_window_sized_by_the_queue() -> None:
    # Queue of 20 from t=10 on, replicas ready at once: 1 -> 5 (step bound 4) at t=11,
    # 5 -> 9 one window later, then 10 = ceil(20 / 2): queue per replica back at the target.
    def burst(t: float, n: int) -> QueueSignals:
        return QueueSignals(handle_queued=20 if t >= 10 else 0, running=n * 4)

    trace = replay(burst, 1, 30)
    assert changes(trace, 1) == [(11.0, 5), (12.5, 9), (14.0, 10)]
    assert trace[-1][1] == 10


def test_burst_while_replicas_start_adds_more_only_when_the_queue_doubles() -> None:
    # Ready replicas stay at 1 (cold start). The first step is sized for a queue of 20; the queue
    # must reach 2 x 20 = 40 before the next step, which then comes in the same tick (the queue
    # has been above target since 11.5, so the window is long satisfied).
    def burst(t: float, n: int) -> QueueSignals:
        queue = 0 if t < 10 else (20 if t < 40 else 40)
        return QueueSignals(engine_waiting=queue, running=4, ready_replicas=1)

    trace = replay(burst, 1, 60)
    assert changes(trace, 1) == [(11.0, 5), (40.0, 9)]


def test_cold_start_backlog_is_sized_by_what_replicas_hold_not_by_the_queue() -> None:
    # One ready replica, saturated at 30 running (learnt while the queue is above target). The
    # queue grows by 4 a second while the added replicas start. Queue-sized steps would want
    # ceil(queue / 2) replicas; while replicas start the policy wants only enough to hold every
    # request at once: ceil((queue + 30) / 30).
    config = CFG.model_copy(update={"max_replicas": 50, "max_scale_up_step": 50})

    def script(t: float, n: int) -> QueueSignals:
        return QueueSignals(handle_queued=4 * t, running=30, ready_replicas=1)

    got = changes(replay(script, 1, 60, config), 1)
    # t=0.5: queue 2 is not above 2. t=1: 4 > 2 opens the window; t=2: queue 8, nothing is
    # starting yet: ceil(8 / 2) = 4. From then on each step waits for the queue to double:
    # t=4 (16): ceil(46 / 30) = 2 < 5, so one more; t=8 (32): ceil(62 / 30) = 3, so one more...
    assert got == [(2.0, 4), (4.0, 5), (8.0, 6), (16.0, 7), (32.0, 8)]
    assert max(n for _, n in got) < math.ceil(4 * 60 / 2)


def test_slow_ramp_follows_the_queue_without_stepping_back() -> None:
    # queue = t / 10: above 2 per replica from t=20.5 (2.05 > 2), so the first step is at 21.5.
    def ramp(t: float, n: int) -> QueueSignals:
        return QueueSignals(engine_waiting=t / 10, running=n * 4)

    trace = replay(ramp, 1, 100)
    got = changes(trace, 1)
    assert got[0] == (21.5, 2)
    assert all(b > a for (_, a), (_, b) in zip([(0.0, 1), *got], got, strict=False))
    # At the end the queue is 10: ceil(10 / 2) = 5 replicas, reached within one window.
    assert trace[-1][1] == math.ceil(100 / 10 / 2)
    # Every step came after at least one full window above target.
    for t, n in got:
        assert (t - TICK) / 10 / (n - 1) > 2


def test_sawtooth_shorter_than_the_down_delay_never_scales_down() -> None:
    # Queue climbs 0 -> 19 over 20 s and drops to 0, repeatedly. Low spells last < 60 s, so the
    # count only rises. It settles at 9: at 9 replicas only a queue of 19 is above target
    # (19 / 9 > 2), and it lasts 1 s, i.e. two ticks 0.5 s apart: never a full 1 s window.
    def saw(t: float, n: int) -> QueueSignals:
        return QueueSignals(handle_queued=float(int(t) % 20), running=n * 4)

    trace = replay(saw, 1, 600)
    assert direction_changes(trace, 1) == 0
    assert all(b >= a for (_, a), (_, b) in itertools.pairwise(trace))
    assert trace[-1][1] == 9


def test_flapping_input_does_not_flap_the_output() -> None:
    # Queue alternating 0 and 5 every tick: above target for 0.5 s at a time, never for the 1 s
    # window, and never low for 60 s in a row either: nothing changes.
    def flap(t: float, n: int) -> QueueSignals:
        return QueueSignals(handle_queued=5 if int(t / TICK) % 2 else 0, running=3)

    assert changes(replay(flap, 1, 600), 1) == []

    # Queue per replica hovering in the hysteresis band (1 < q / n <= 2 at n=3): hold forever.
    def hover(t: float, n: int) -> QueueSignals:
        return QueueSignals(engine_waiting=4 if int(t) % 2 else 6, running=12)

    assert changes(replay(hover, 3, 900), 3) == []


def test_overload_then_quiet_steps_down_once_per_delay_with_one_direction_change() -> None:
    def load(t: float, n: int) -> QueueSignals:
        # Saturated replicas running 2 each until t=30, then one request in flight.
        return QueueSignals(handle_queued=12, running=2 * n) if t < 30 else QueueSignals(running=1)

    trace = replay(load, 1, 400)
    got = changes(trace, 1)
    # Up: 1 -> 5 at 1 s, then 6 = ceil(12 / 2) at 2.5 s. Down: the first removal waits 60 s from
    # both the last step up and the start of the low queue (t=30), then one per 60 s.
    assert got == [(1.0, 5), (2.5, 6), (90.0, 5), (150.0, 4), (210.0, 3), (270.0, 2), (330.0, 1)]
    assert direction_changes(trace, 1) == 1


def test_scale_down_keeps_replicas_the_running_load_needs() -> None:
    # t < 10: 4 ready replicas saturated (queue 20 > 2 x 4) running 40, i.e. 10 each.
    # Then no queue but 35 running: 35 / 3 = 11.7 > 0.8 x 10, so no replica goes; the low window
    # is judged at 70, 130, 190, 250 on its peak, and restarts each time. The load falls to 20 at
    # t=200, but the window 190-250 still saw 35; the one from 250 sees only 20
    # (20 / 3 = 6.7 <= 8): one replica goes at 310.
    config = CFG.model_copy(update={"max_replicas": 4})

    def script(t: float, n: int) -> QueueSignals:
        if t < 10:
            return QueueSignals(handle_queued=20, running=40)
        return QueueSignals(running=35 if t < 200 else 20)

    got = changes(replay(script, 4, 320, config), 4)
    assert got == [(310.0, 3)]


def test_a_long_queue_scales_up_even_while_it_drains() -> None:
    # One replica serving 2 requests/s cannot clear a queue of 40 for 20 s: a queue that shrinks
    # but stays above target is still people waiting. Window from t=0, decision at t=1 (queue 38):
    # ceil(38 / 2) = 19 wanted, bounded to 1 + 4.
    def drain(t: float, n: int) -> QueueSignals:
        return QueueSignals(handle_queued=max(0.0, 40 - 2 * t), running=2)

    assert changes(replay(drain, 1, 1.0), 1) == [(1.0, 5)]


def test_idle_goes_to_zero_only_after_the_idle_time_and_a_request_brings_one_back_at_once() -> None:
    config = CFG.model_copy(update={"min_replicas": 0})

    def script(t: float, n: int) -> QueueSignals:
        if t < 30:
            return QueueSignals(running=1)  # a request in flight: not idle
        if t < 200:
            return QueueSignals()
        return QueueSignals(handle_queued=1)  # the first request after scale to zero

    trace = replay(script, 1, 205, config)
    # Idle from t=30: the low-queue rule cannot take the last replica (floor 1); the idle rule
    # does, 120 s later. The request at t=200 gets one replica in the same decision.
    assert changes(trace, 1) == [(150.0, 0), (200.0, 1)]


def test_a_starting_replica_is_not_scaled_to_zero() -> None:
    config = CFG.model_copy(update={"min_replicas": 0})

    def cold_start(t: float, n: int) -> QueueSignals:
        # No requests, and the one replica asked for takes until t=300 to start.
        return QueueSignals(ready_replicas=0 if t < 300 else n)

    # Idle from t=0, but zero only once the replica is up: at t=300, not at t=120.
    assert changes(replay(cold_start, 1, 400, config), 1) == [(300.0, 0)]


def test_zero_stays_zero_without_requests() -> None:
    config = CFG.model_copy(update={"min_replicas": 0})
    assert changes(replay(lambda t, n: QueueSignals(), 0, 100, config), 0) == []


def test_replicas_never_leave_min_max() -> None:
    config = CFG.model_copy(update={"min_replicas": 2, "max_replicas": 6})
    assert decide(QueueSignals(), 9, config, PolicyState(), 0.0)[0] == 6
    assert decide(QueueSignals(), 0, config, PolicyState(), 0.0)[0] == 2
    assert decide(QueueSignals(), 1, config, PolicyState(), 0.0)[0] == 2

    def wild(t: float, n: int) -> QueueSignals:
        return QueueSignals(handle_queued=1000 if int(t / 100) % 2 == 0 else 0, running=1)

    trace = replay(wild, 2, 1000, config)
    assert {n for _, n in trace} <= set(range(2, 7))
    assert max(n for _, n in trace) == 6
    assert min(n for _, n in trace) == 2


def test_every_step_is_bounded() -> None:
    config = CFG.model_copy(
        update={"max_replicas": 50, "max_scale_up_step": 3, "max_scale_down_step": 2}
    )

    def wild(t: float, n: int) -> QueueSignals:
        return QueueSignals(handle_queued=400 if int(t / 300) % 2 == 0 else 0, running=0)

    trace = replay(wild, 1, 1200, config)
    steps = [b - a for (_, a), (_, b) in zip([(0.0, 1), *trace], trace, strict=False)]
    assert max(steps) == 3
    assert min(steps) == -2


def test_state_round_trips_through_json() -> None:
    state = PolicyState(above_since=1.5, low_since=None, saturated_running_per_replica=7.0)
    state = decide(QueueSignals(handle_queued=9), 2, CFG, state, 3.0)[1]
    again = PolicyState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    assert PolicyState.from_dict({"above_since": "x", "other": 1}) == PolicyState()


def test_config_built_one_to_one_from_the_api_scaling_spec() -> None:
    spec = ScalingSpec.model_validate(
        {
            "minReplicas": 0,
            "maxReplicas": 8,
            "targetQueueDepth": 3,
            "scaleUpStabilizationSeconds": 2,
            "scaleDownDelaySeconds": 120,
            "scaleToZeroAfterSeconds": 600,
            "maxQueuedRequests": 64,
        }
    )
    config = AutoscalingConfig.from_scaling_spec(spec, max_scale_up_step=2)
    assert (config.min_replicas, config.max_replicas, config.target_queue_depth) == (0, 8, 3)
    assert (config.scale_up_stabilization_s, config.scale_down_delay_s) == (2, 120)
    assert config.scale_to_zero_after_s == 600
    assert config.max_scale_up_step == 2
    # The API's defaults and ours agree.
    default = AutoscalingConfig.from_scaling_spec(ScalingSpec())
    assert default == AutoscalingConfig()


def test_config_rejects_unknown_fields_and_inverted_bounds() -> None:
    with pytest.raises(ValueError, match="extra"):
        AutoscalingConfig.model_validate({"min_replicas": 1, "bogus": 2})
    with pytest.raises(ValueError, match=r"max_replicas \(1\) must be >= min_replicas \(3\)"):
        AutoscalingConfig(min_replicas=3, max_replicas=1)
    for name, field in AutoscalingConfig.model_fields.items():
        assert field.description, name


def test_package_imports_neither_ray_nor_vllm() -> None:
    code = (
        "import sys, modeldeploy_serving.autoscaling, modeldeploy_serving.autoscaling.ray_policy;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'vllm', 'torch')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ray_serve_settings() -> None:
    config = CFG.model_copy(update={"min_replicas": 0, "initial_replicas": 1})
    got = ray_autoscaling_config(config)
    assert got["min_replicas"] == 0 and got["max_replicas"] == 10 and got["initial_replicas"] == 1
    assert got["upscale_delay_s"] == got["downscale_delay_s"] == 0
    assert got["metrics_interval_s"] == 0.5
    assert got["policy"]["policy_function"] == POLICY_IMPORT_PATH
    kwargs = got["policy"]["policy_kwargs"]
    # Bounds and target stay out of the kwargs (Ray hashes those into the code version: a
    # change would restart replicas) and travel in Ray's own fields; the rest goes unchanged.
    assert not {"min_replicas", "max_replicas", "initial_replicas", "target_queue_depth"} & set(
        kwargs
    )
    assert got["target_ongoing_requests"] == config.target_queue_depth
    assert kwargs == config.model_dump(mode="json", exclude=set(IN_PLACE))
    assert metric_push_env() == {
        "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
        "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
        # sampled as often as pushed: 1 s look-back x 0.5
        "RAY_SERVE_AUTOSCALING_METRIC_RECORD_INTERVAL_FACTOR": "0.5",
    }


def _context(**overrides: object) -> SimpleNamespace:
    values: dict[str, object] = {
        "total_num_requests": 30.0,
        "total_queued_requests": 10.0,
        "aggregated_metrics": {ENGINE_WAITING_METRIC: {"r1": 4.0, "r2": 6.0}},
        "current_num_replicas": 2,
        "target_num_replicas": 2,
        "policy_state": {},
        "current_time": 100.0,
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def test_adapter_reads_the_context() -> None:
    signals = signals_from_context(_context())
    # 30 ongoing in total, 10 at handles: 20 at replicas, of which 10 wait in the engines.
    assert signals == QueueSignals(
        engine_waiting=10, handle_queued=10, running=10, ready_replicas=2
    )
    assert signals_from_context(_context(aggregated_metrics=None)).engine_waiting == 0


def test_adapter_scales_after_the_window_and_keeps_rays_own_state() -> None:
    policy = QueueDepthPolicy(**CFG.model_dump(mode="json"))
    replicas, state = policy(_context(policy_state={"ray-internal": 3}))
    assert replicas == 2  # queue 20 over 2 replicas is above target: the window opens
    assert state["ray-internal"] == 3
    replicas, state = policy(_context(policy_state=state, current_time=101.0))
    assert replicas == 6  # 2 + min(ceil(20 / 2) - 2, 4)
    assert state[STATE_KEY]["last_scale_up_at"] == 101.0


def test_adapter_runs_inside_ray_serves_wrapper() -> None:
    config_mod = pytest.importorskip("ray.serve.config")
    policy_mod = pytest.importorskip("ray.serve.autoscaling_policy")
    common = pytest.importorskip("ray.serve._private.common")
    ray_config = config_mod.AutoscalingConfig(**ray_autoscaling_config(CFG))
    policy = policy_mod._apply_autoscaling_config(
        ray_config.policy.get_policy()(**ray_config.policy.policy_kwargs)
    )

    def context(state: dict[str, object], now: float) -> object:
        return config_mod.AutoscalingContext(
            deployment_id=common.DeploymentID(name="llm", app_name="app"),
            deployment_name="llm",
            app_name="app",
            current_num_replicas=2,
            target_num_replicas=2,
            running_replicas=[],
            total_num_requests=30.0,
            total_queued_requests=10.0,
            aggregated_metrics={ENGINE_WAITING_METRIC: {"r1": 4.0, "r2": 6.0}},
            raw_metrics={},
            capacity_adjusted_min_replicas=1,
            capacity_adjusted_max_replicas=10,
            policy_state=state,
            last_scale_up_time=None,
            last_scale_down_time=None,
            current_time=now,
            config=ray_config,
        )

    replicas, state = policy(context({}, 100.0))
    assert replicas == 2
    replicas, state = policy(context(state, 101.0))
    # Ray's own delays are zero, so our decision passes through unchanged.
    assert replicas == 6

    # A new target reaches the running policy through the context (no new kwargs, so no new
    # policy and no replica restart): 10 waiting per replica is now below it.
    ray_config = config_mod.AutoscalingConfig(
        **ray_autoscaling_config(CFG.model_copy(update={"target_queue_depth": 20}))
    )
    assert (
        ray_config.policy.policy_kwargs
        == config_mod.AutoscalingConfig(**ray_autoscaling_config(CFG)).policy.policy_kwargs
    )
    replicas, state = policy(context({}, 200.0))
    replicas, state = policy(context(state, 201.0))
    assert replicas == 2


def test_engine_stats_from_vllm_metrics_text() -> None:
    text = """# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 3.0
vllm:num_requests_waiting{engine="1",model_name="m"} 2.0
vllm:num_requests_running{engine="0",model_name="m"} 7.0
vllm:num_requests_waiting_by_reason{engine="0",reason="capacity"} 9.0
vllm:num_requests_running{engine="1",model_name="m"} NaN
"""
    assert autoscaling_stats(text) == {ENGINE_WAITING_METRIC: 5.0, ENGINE_RUNNING_METRIC: 7.0}
    assert autoscaling_stats("") == {ENGINE_WAITING_METRIC: 0.0, ENGINE_RUNNING_METRIC: 0.0}
    # What a replica reports is what the adapter reads back.
    ctx = _context(
        aggregated_metrics={name: {"r1": value} for name, value in autoscaling_stats(text).items()}
    )
    assert signals_from_context(ctx).running == 7.0


@pytest.mark.parametrize("seed", range(5))
def test_invariants_under_random_signals(seed: int) -> None:
    # Whatever the signals: within [min, max], steps within their bounds, and never a step down
    # sooner than scale_down_delay_s after a step up (the no-flapping guarantee).
    rng = random.Random(seed)
    config = CFG.model_copy(update={"min_replicas": 0, "max_replicas": 12})
    level = 0.0

    def noisy(t: float, n: int) -> QueueSignals:
        nonlocal level
        level = max(0.0, level + rng.choice((-3.0, -1.0, 0.0, 1.0, 3.0)))
        if rng.random() < 0.01:
            level = 0.0
        return QueueSignals(
            engine_waiting=level,
            handle_queued=rng.choice((0.0, 0.0, 5.0)),
            running=rng.uniform(0, 40) if level else 0.0,
            ready_replicas=rng.randint(0, n) if n else 0,
        )

    trace = replay(noisy, 1, 3000, config)
    last_up = -1e9
    previous = 1
    for t, n in trace:
        assert 0 <= n <= 12
        assert -config.max_scale_down_step <= n - previous <= config.max_scale_up_step
        if n > previous:
            last_up = t
        elif n < previous and n > 0:
            assert t - last_up >= config.scale_down_delay_s - 1e-6, (t, last_up)
        previous = n
