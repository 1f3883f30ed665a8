"""The local run with the gateway in front: `modeldeploy serve -f FILE` when the file asks for
API keys, overflow or local-only, or holds several models.

The models run as Serve applications on a local Ray (one route prefix each when there are
several); the gateway runs in this process, on the user's port, and reads the applications'
replicas from Serve directly. Ctrl-C (or SIGTERM) stops the gateway, then what LocalServer
started.
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from modeldeploy_serving.config import ServingConfig
from modeldeploy_serving.ingress import DEFAULT_INGRESS, IngressMode
from modeldeploy_serving.local import LocalServer

from .config import GatewayConfig
from .replicas import CombinedSource
from .server import run_gateway

ANNOUNCE_TIMEOUT_S = 60.0


def _announce_when_up(base_url: str, names: list[str], ready_file: Path | None) -> None:
    deadline = time.monotonic() + ANNOUNCE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    else:
        print(f"==> the gateway did not answer at {base_url}", file=sys.stderr, flush=True)
        return
    print(f"serving {', '.join(names)} at {base_url}/v1", flush=True)
    if ready_file is not None:
        ready_file.write_text(base_url + "\n")


def serve_with_gateway(
    configs: Sequence[ServingConfig],
    gateway: GatewayConfig,
    serve_port: int,
    host: str = "127.0.0.1",
    port: int = 8000,
    ingress: IngressMode = DEFAULT_INGRESS,
    ready_file: Path | None = None,
) -> None:
    """Serve `configs` behind `gateway` until SIGINT/SIGTERM; Serve listens on `serve_port`."""
    server = LocalServer(configs, host="127.0.0.1", port=serve_port, ingress=ingress)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    base_url = f"http://{shown}:{port}"
    names = [r.name for r in gateway.routes] + [h.name for h in gateway.hosted]
    with server:
        announcer = threading.Thread(
            target=_announce_when_up, args=(base_url, names, ready_file), daemon=True
        )
        announcer.start()
        in_process = [r.app_name for r in gateway.routes if r.dashboard_url is None]
        dashboards = {r.app_name: r.dashboard_url for r in gateway.routes if r.dashboard_url}
        # uvicorn handles SIGINT and SIGTERM itself: it returns, and LocalServer cleans up.
        run_gateway(gateway, CombinedSource(in_process, dashboards), host, port)
        print("==> stopping", file=sys.stderr, flush=True)
