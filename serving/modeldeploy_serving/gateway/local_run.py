"""The local run with the gateway in front: `modeldeploy serve -f FILE` when the file asks for
API keys, overflow or local-only, or holds several models.

The models run as Serve applications on a local Ray (one route prefix each when there are
several). The gateway runs in a process of its own on the user's port, as its Deployment does
in the cluster (`python -m modeldeploy_serving.gateway`); this process, the Ray driver, reads
the applications' replicas from Serve and publishes them in a file the gateway reads.

Why a process of its own: in the driver's process the gateway's event loop shares one GIL with
the driver's threads (Ray's core-worker callbacks, the replicas poll), so on a busy machine each
streamed chunk may wait for them; in its own process it imports no Ray at all, and the local run
serves through the very program the cluster's gateway Deployment runs. The overhead benchmark
measures this together with the gateway's cheaper forwarding (bench/overhead/README.md); the
two were not measured apart. Ctrl-C (or SIGTERM) stops the gateway, then what LocalServer
started.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from modeldeploy_serving.config import ServingConfig
from modeldeploy_serving.ingress import DEFAULT_INGRESS, IngressMode
from modeldeploy_serving.local import LocalServer

from .config import GatewayConfig
from .replicas import ServeStatusSource, write_counts

ANNOUNCE_TIMEOUT_S = 60.0
GATEWAY_STOP_TIMEOUT_S = 15.0


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


def _publish_replicas(
    app_names: list[str], path: Path, interval_s: float, stop: threading.Event
) -> None:
    """Write Serve's ready replicas of `app_names` to `path` every `interval_s` until `stop`.
    A failed read writes nothing: the file ages, and the gateway then reads "unknown"."""
    while not stop.is_set():
        try:
            write_counts(path, ServeStatusSource.read(app_names))
        except Exception as exc:  # the next round retries
            print(f"==> reading replicas failed: {type(exc).__name__}", file=sys.stderr, flush=True)
        stop.wait(interval_s)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # uvicorn finishes what it serves, then exits
    try:
        process.wait(timeout=GATEWAY_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
    in_process = [r.app_name for r in gateway.routes if r.dashboard_url is None]
    with server, tempfile.TemporaryDirectory(prefix="md-gateway-") as scratch:
        # After ray.init(), which installs its own SIGTERM handler (it exits without cleanup).
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
        config_file = Path(scratch) / "gateway.json"
        config_file.write_text(gateway.to_json(), encoding="utf-8")
        replicas_file = Path(scratch) / "replicas.json"
        stop = threading.Event()
        if in_process:
            # The first counts before the gateway's first read.
            write_counts(replicas_file, ServeStatusSource.read(in_process))
            threading.Thread(
                target=_publish_replicas,
                args=(in_process, replicas_file, gateway.poll_interval_s, stop),
                daemon=True,
            ).start()
        argv = [sys.executable, "-m", "modeldeploy_serving.gateway", str(config_file)]
        argv += ["--host", host, "--port", str(port), "--replicas-file", str(replicas_file)]
        process = subprocess.Popen(argv)
        try:
            threading.Thread(
                target=_announce_when_up, args=(base_url, names, ready_file), daemon=True
            ).start()
            code = process.wait()
            print(f"==> the gateway exited with status {code}", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            _stop(process)
            print("==> stopping", file=sys.stderr, flush=True)
