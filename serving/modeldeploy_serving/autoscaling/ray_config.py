"""What Ray Serve needs to run the queue-depth policy: its `autoscaling_config` and environment.

Pure: builds dicts, imports no Ray. Ray's own delays are set to zero because `decide` owns all
the timing; left at their defaults (upscale 30 s, downscale 600 s) they would sit on top of ours.
Ray's controller looks at metrics as often as replicas and handles push them, every 10 s by
default; the two environment variables below shorten that, and must be set in the environment
of the Ray processes (replicas, proxies, controller) before they start.
"""

from __future__ import annotations

from typing import Any

from .config import AutoscalingConfig

POLICY_IMPORT_PATH = "modeldeploy_serving.autoscaling.ray_policy:QueueDepthPolicy"
"""Ray Serve's `autoscaling_config.policy.policy_function` for the queue-depth policy."""

ENGINE_WAITING_METRIC = "engine_waiting_requests"
"""Key of the engine's waiting-queue length in a replica's `record_autoscaling_stats()` dict."""
ENGINE_RUNNING_METRIC = "engine_running_requests"
"""Key of the engine's running-request count in the same dict (optional)."""

METRIC_PUSH_INTERVAL_S = 0.5
METRIC_PUSH_ENV = (
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S",
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S",
)
LOOK_BACK_PERIOD_S = 1.0
# Replicas sample their metrics every look_back_period_s x this factor (Ray's default 0.2, i.e.
# every 0.2 s); sampling as often as they push is enough for a policy that smooths over seconds,
# and each sample costs the engine's CPU.
RECORD_INTERVAL_FACTOR_ENV = "RAY_SERVE_AUTOSCALING_METRIC_RECORD_INTERVAL_FACTOR"


IN_PLACE = frozenset({"min_replicas", "max_replicas", "initial_replicas", "target_queue_depth"})
"""Settings left out of `policy_kwargs`: Ray hashes the policy and its kwargs into the
application's code version (`get_app_code_version`), so a changed kwarg restarts every replica.
These reach the policy through the context instead, in Ray's own fields of the deployment's
autoscaling config (the bounds; the target per replica as `target_ongoing_requests`, which only
Ray's default policy reads), and changing them updates the running deployment in place. The
delays stay kwargs: Ray applies its own delay fields on top of any policy."""


def metric_push_env(interval_s: float = METRIC_PUSH_INTERVAL_S) -> dict[str, str]:
    """Environment variables that make replicas and handles sample and report every
    `interval_s`."""
    factor = min(1.0, interval_s / LOOK_BACK_PERIOD_S)
    return {name: f"{interval_s:g}" for name in METRIC_PUSH_ENV} | {
        RECORD_INTERVAL_FACTOR_ENV: f"{factor:g}"
    }


def ray_autoscaling_config(
    config: AutoscalingConfig,
    *,
    metrics_interval_s: float = METRIC_PUSH_INTERVAL_S,
    look_back_period_s: float = LOOK_BACK_PERIOD_S,
) -> dict[str, Any]:
    """The deployment's `autoscaling_config` for Ray Serve, with our policy plugged in.

    The policy's settings travel as `policy_kwargs` (Ray builds the policy class with them once
    per deployment config), except those of IN_PLACE, which come with every call.
    `look_back_period_s` only needs to span a couple of metric pushes, because the policy's own
    windows do the smoothing.
    """
    return {
        "min_replicas": config.min_replicas,
        "max_replicas": config.max_replicas,
        "initial_replicas": config.start_replicas,
        "target_ongoing_requests": config.target_queue_depth,
        "upscale_delay_s": 0.0,
        "downscale_delay_s": 0.0,
        "downscale_to_zero_delay_s": 0.0,
        "metrics_interval_s": metrics_interval_s,
        "look_back_period_s": look_back_period_s,
        "policy": {
            "policy_function": POLICY_IMPORT_PATH,
            "policy_kwargs": config.model_dump(mode="json", exclude=set(IN_PLACE)),
        },
    }
