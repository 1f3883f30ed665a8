"""Environment for every Ray process of a serving cluster: how often Serve's own loops run.

Ray Serve reads these once, at import, in the controller, proxies and replicas, so they belong in
the environment before Ray starts (the pod spec on Kubernetes, `os.environ` before `ray.init()`
locally). By default the controller wakes every 0.1 s and every replica and proxy exports its
request metrics every 0.1 s; on a small node those wake-ups cost a visible share of a core, and
that share comes out of the engine (bench/results/overhead.md). The longer periods below are
still far shorter than anything they drive: autoscaling decisions smooth over seconds, and
Prometheus scrapes every 15 s or more.
"""

from __future__ import annotations

from modeldeploy_serving.autoscaling import metric_push_env

CONTROL_LOOP_INTERVAL_S = 0.5
METRICS_EXPORT_INTERVAL_MS = 1000


def serve_env() -> dict[str, str]:
    """Serve's loop periods plus the autoscaling metric cadence (pure)."""
    return metric_push_env() | {
        "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": f"{CONTROL_LOOP_INTERVAL_S:g}",
        "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": str(METRICS_EXPORT_INTERVAL_MS),
    }
