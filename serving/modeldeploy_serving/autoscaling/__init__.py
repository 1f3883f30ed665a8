"""Queue-depth autoscaling: the pure policy, its config, and what Ray Serve needs to run it.

Importing this package imports neither Ray nor vLLM: the operator builds Serve configs from it,
and the trace simulator in bench/autoscale runs the same `decide`.
"""

from .config import AutoscalingConfig, ScalingSpecLike
from .engine_stats import autoscaling_stats
from .policy import PolicyState, QueueSignals, decide
from .ray_config import (
    ENGINE_RUNNING_METRIC,
    ENGINE_WAITING_METRIC,
    POLICY_IMPORT_PATH,
    metric_push_env,
    ray_autoscaling_config,
)

__all__ = [
    "ENGINE_RUNNING_METRIC",
    "ENGINE_WAITING_METRIC",
    "POLICY_IMPORT_PATH",
    "AutoscalingConfig",
    "PolicyState",
    "QueueSignals",
    "ScalingSpecLike",
    "autoscaling_stats",
    "decide",
    "metric_push_env",
    "ray_autoscaling_config",
]
