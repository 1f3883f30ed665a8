"""Run the serving application on a local Ray: what `modeldeploy serve -f FILE` does.

Starts a single-node Ray (or joins the cluster in RAY_ADDRESS), deploys `build_app(config)`,
waits until the endpoint answers, prints the base URL and serves until SIGINT or SIGTERM. On the
way out it removes only what it created: the application always, Serve and Ray only when it
started them.

`python -m modeldeploy_serving.local CONFIG` does the same from a ServingConfig file (JSON or
YAML); the tests and the benchmark use it to run a server in a process they own.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from modeldeploy_serving.config import ServingConfig
from modeldeploy_serving.ingress import DEFAULT_INGRESS, INGRESS_MODES, IngressMode, ingress_env
from modeldeploy_serving.serve_env import serve_env

READY_TIMEOUT_S = 600.0


def free_port() -> int:
    """A TCP port that was free a moment ago (the usual small race is acceptable locally)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def local_haproxy_launcher() -> str:
    """The `modeldeploy-haproxy` command installed beside this Python."""
    return str(Path(sys.executable).parent / "modeldeploy-haproxy")


def local_ray_env(mode: IngressMode, scratch: Path, port: int) -> dict[str, str]:
    """Environment for a Ray this process starts: the ingress mode, plus HAProxy's files and
    side ports moved off their fixed defaults so two local servers do not collide."""
    # Short autoscaling metric pushes (the queue-depth policy reacts in about a second), and
    # Serve's own loops woken less often.
    env = ingress_env(mode, haproxy_launcher=local_haproxy_launcher()) | serve_env()
    # vLLM's engine processes talk over ZMQ sockets it creates here (default: the temp dir)
    # and leaves behind when Ray stops them; the scratch folder goes with this Ray.
    env["VLLM_RPC_BASE_PATH"] = str(scratch)
    if mode == "direct":
        # Without HAProxy nothing forwards to the replicas' own servers, so the (first) replica
        # takes the endpoint's port itself; Serve's remaining proxy moves to a spare port.
        env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] = str(port)
        env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] = str(port + 100)
    if mode != "proxy":
        # A stopping replica keeps its own HTTP server open this long so that HAProxy on other
        # nodes stops sending to it first (default 30 s). One node learns it at once.
        env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "2"
    if mode.startswith("haproxy"):
        env |= {
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(scratch / "haproxy.cfg"),
            "RAY_SERVE_HAPROXY_SOCKET_PATH": str(scratch / "admin.sock"),
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(scratch),
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(scratch / "server-state"),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
            "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(free_port()),
            "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(free_port()),
        }
    return env


def wait_until_ready(
    base_url: str, timeout_s: float = READY_TIMEOUT_S, path: str = "/v1/models"
) -> None:
    """Poll /v1/models (or `path`) until it answers 200: the route, the ingress and the engine
    are all up."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}{path}", timeout=5) as response:
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as error:
            last_error = str(error)
        time.sleep(0.5)
    raise TimeoutError(f"{base_url} not ready after {timeout_s:.0f} s: {last_error}")


def route_prefixes(configs: Sequence[ServingConfig]) -> dict[str, str]:
    """Serve route prefix per application: "/" for one, "/APP_NAME" for each of several (pure)."""
    if len(configs) == 1:
        return {configs[0].app_name: "/"}
    return {c.app_name: f"/{c.app_name}" for c in configs}


def app_base_urls(configs: Sequence[ServingConfig], base_url: str) -> dict[str, str]:
    """Where each application's OpenAI API is (without /v1) under a Serve base URL (pure)."""
    return {app: base_url + prefix.rstrip("/") for app, prefix in route_prefixes(configs).items()}


class LocalServer:
    """The application(s) on a local Ray, as a context manager: entered, they serve at
    `base_url` (one application) or under `base_url`/APP_NAME (several)."""

    def __init__(
        self,
        config: ServingConfig | Sequence[ServingConfig],
        host: str = "127.0.0.1",
        port: int = 8000,
        ingress: IngressMode = DEFAULT_INGRESS,
    ) -> None:
        self.configs = [config] if isinstance(config, ServingConfig) else list(config)
        if not self.configs:
            raise ValueError("LocalServer needs at least one ServingConfig")
        apps = [c.app_name for c in self.configs]
        if len(set(apps)) != len(apps):
            raise ValueError(f"application names must be unique, got {apps}")
        self.config = self.configs[0]
        self.host = host
        self.port = port
        self.ingress = ingress
        self._started_ray = False
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{shown}:{self.port}"

    def start(self) -> str:
        joining = bool(os.environ.get("RAY_ADDRESS"))
        if not joining:
            # Must precede the first `import ray`: Serve reads these at import in every process.
            # Short: HAProxy's admin socket lands below it in a per-node folder, and socket paths
            # are limited to 97 characters.
            self._scratch = tempfile.TemporaryDirectory(prefix="md-", dir="/tmp")
            os.environ.update(local_ray_env(self.ingress, Path(self._scratch.name), self.port))
        import ray
        from ray import serve

        from modeldeploy_serving.app import build_app

        _progress(f"{'joining Ray at ' + os.environ['RAY_ADDRESS'] if joining else 'starting Ray'}")
        # address="local" always starts a fresh single-node Ray: without it, ray.init() would
        # silently join any cluster that `ray start` left on this machine.
        # Ray counts the CPUs it schedules, not the ones that exist: a local Ray that owns fewer
        # than the application reserves would leave replicas pending forever.
        needed = sum(c.cpus_per_replica * max(1, c.most_replicas) for c in self.configs)
        ray.init(
            address=None if joining else "local",
            num_cpus=None if joining else max(os.cpu_count() or 1, math.ceil(needed)),
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
        self._started_ray = not joining
        proxy_port = free_port() if self.ingress == "direct" and not joining else self.port
        serve.start(http_options={"host": self.host, "port": proxy_port})
        prefixes = route_prefixes(self.configs)
        for config in self.configs:
            _progress(f"deploying {config.served_model_name} ({config.model})")
        # Side by side: every engine starts at once instead of one after the other.
        targets = [
            serve.RunTarget(build_app(c), name=c.app_name, route_prefix=prefixes[c.app_name])
            for c in self.configs
        ]
        serve.run_many(targets, wait_for_applications_running=False)
        urls = app_base_urls(self.configs, self.base_url)
        for config in self.configs:
            _wait_for_application(config.app_name)
            # At zero replicas a request would start one: Serve's RUNNING is all there is.
            if not _starts_at_zero(config):
                wait_until_ready(urls[config.app_name])
        return self.base_url

    def stop(self) -> None:
        import ray
        from ray import serve

        if not ray.is_initialized():
            return
        try:
            if self._started_ray:
                serve.shutdown()  # type: ignore[no-untyped-call]
            else:
                for config in self.configs:
                    serve.delete(config.app_name)
        finally:
            ray.shutdown()
            if self._scratch is not None:
                self._scratch.cleanup()

    def __enter__(self) -> LocalServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _starts_at_zero(config: ServingConfig) -> bool:
    return config.autoscaling is not None and config.autoscaling.start_replicas == 0


def _wait_for_application(app_name: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait until Serve reports `app_name` RUNNING (at zero replicas, nothing answers HTTP)."""
    from ray import serve

    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        app = serve.status().applications.get(app_name)
        if app is not None:
            status = app.status
            if status == "RUNNING":
                return
            if status == "DEPLOY_FAILED":
                raise RuntimeError(f"application {app_name} failed to deploy: {app.message}")
        time.sleep(0.5)
    raise TimeoutError(f"application {app_name} not running after {timeout_s:.0f} s: {status}")


def _progress(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def serve(
    config: ServingConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    ingress: IngressMode = DEFAULT_INGRESS,
    ready_file: Path | None = None,
) -> None:
    """Serve `config` until SIGINT/SIGTERM. `ready_file`, if given, receives the base URL once
    the endpoint answers (for programs that start this one and wait for it)."""
    server = LocalServer(config, host=host, port=port, ingress=ingress)
    try:
        with server:
            # After ray.init(), which installs its own SIGTERM handler (it exits without
            # cleanup). SIGINT too: a shell starts background jobs with SIGINT ignored.
            signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
            signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
            print(f"serving {config.served_model_name} at {server.base_url}/v1", flush=True)
            if ready_file is not None:
                ready_file.write_text(server.base_url + "\n")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        _progress("stopping")


def load_config(path: Path) -> ServingConfig:
    """A ServingConfig from a JSON or YAML file."""
    text = path.read_text()
    data: Any
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    return ServingConfig.model_validate(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m modeldeploy_serving.local",
        description="Serve a ServingConfig file on a local Ray until interrupted.",
    )
    parser.add_argument("config", type=Path, help="ServingConfig as JSON or YAML")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--ingress", choices=INGRESS_MODES, default=DEFAULT_INGRESS)
    parser.add_argument("--ready-file", type=Path, help="write the base URL here once ready")
    args = parser.parse_args(argv)
    serve(
        load_config(args.config),
        host=args.host,
        port=args.port,
        ingress=args.ingress,
        ready_file=args.ready_file,
    )


if __name__ == "__main__":
    main()
