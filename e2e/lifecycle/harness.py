"""Processes the operator e2e tests run beside the cluster: the operator itself and a local Ray
head standing in for the head pod (pods do not really run on kwok nodes)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from cluster.localcluster import free_port
from secret_scan import OPERATOR_LOGS

from modeldeploy_serving.ingress import DEFAULT_INGRESS, IngressMode
from modeldeploy_serving.local import local_ray_env

ROOT = Path(__file__).resolve().parents[2]


class OperatorProcess:
    """`modeldeploy operator` as a user runs it out of cluster, stopped (or killed) by pid."""

    def __init__(
        self,
        kubeconfig: Path,
        dashboard_template: str,
        metrics_template: str,
        serve_port: int,
        log_dir: Path,
        flags: Sequence[str] = (),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.flags = tuple(flags)
        self.dashboard_template = dashboard_template
        self.metrics_template = metrics_template
        self.serve_port = serve_port
        self.log = log_dir / "operator.log"
        OPERATOR_LOGS.append(self.log)  # scanned for secret values when the session ends
        self.proc: subprocess.Popen[bytes] | None = None
        self.liveness_port = 0

    def start(self) -> None:
        self.liveness_port = free_port()
        command = [
            sys.executable,
            "-m",
            "modeldeploy_operator.cli",
            "operator",
            f"--kubeconfig={self.kubeconfig}",
            f"--dashboard-url-template={self.dashboard_template}",
            f"--metrics-url-template={self.metrics_template}",
            f"--serve-http-port={self.serve_port}",
            "--resync-seconds=2",
            "--metrics-port=0",
            f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz",
            "--verbose",
            *self.flags,
        ]
        # A stable peer identity: a restarted operator takes its own place in the peering.
        env = {**os.environ, "POD_ID": "e2e-operator"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2
                ):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        raise TimeoutError(f"operator not live after 60 s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, exactly what a crash or OOM kill leaves behind."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class LocalRayHead:
    """`ray start --head --block` on free ports: the dashboard and Serve a head pod would run.

    It declares two logical GPUs so that a GPU ModelDeployment's replica, and a second one (a
    burst, a rollout's surge), can be placed; the CPU build of vLLM runs the engine whatever Ray
    calls the resource.
    """

    def __init__(self, ingress: IngressMode = DEFAULT_INGRESS) -> None:
        self.dashboard_port = free_port()
        self.metrics_port = free_port()
        self.serve_port = free_port()
        self.temp = tempfile.mkdtemp(prefix="md-ray-", dir="/tmp")
        # What a head pod's environment sets (the ingress, Serve's loop periods), with
        # HAProxy's files and side ports moved off their fixed defaults.
        self.env = local_ray_env(ingress, Path(self.temp), self.serve_port)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> None:
        ray = Path(sys.executable).parent / "ray"
        command = [
            str(ray),
            "start",
            "--head",
            "--block",
            f"--port={free_port()}",
            f"--dashboard-port={self.dashboard_port}",
            "--dashboard-host=127.0.0.1",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={self.metrics_port}",
            f"--runtime-env-agent-port={free_port()}",
            "--num-cpus=4",
            "--num-gpus=2",
            f"--temp-dir={self.temp}",
            "--include-dashboard=true",
        ]
        # Like a fresh head pod, which has no token file: Ray 2.60 turns token auth on for a
        # local cluster whenever ~/.ray/auth_token exists, and the operator sends no token.
        env = {
            **os.environ,
            **self.env,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "disabled",
        }
        with (Path(self.temp) / "ray-start.log").open("ab") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.dashboard_url}/api/ray/version", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        raise TimeoutError("local Ray dashboard not up after 120 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            # SIGTERM to `ray start --block` stops every Ray process it started.
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)

    def close(self) -> None:
        """stop(), and remove the temp dir (Ray's session logs, a few MB per head)."""
        self.stop()
        shutil.rmtree(self.temp, ignore_errors=True)

    def _runtime_starts(self) -> int:
        log = Path(self.temp) / "ray-start.log"
        return log.read_text(errors="replace").count("Ray runtime started.") if log.exists() else 0

    def start_confirmed(self, attempts: int = 3, timeout: float = 180) -> None:
        """start(), then wait until `ray start` says the runtime started. On a loaded machine
        the dashboard may answer while the raylet misses Ray's own start-up deadline, and
        `ray start` then exits; such a start is tried again, up to `attempts` in all."""
        for _ in range(attempts):
            before = self._runtime_starts()
            try:
                self.start()
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and self._runtime_starts() == before:
                    if self.proc is None or self.proc.poll() is not None:
                        break
                    time.sleep(0.5)
                running = self.proc is not None and self.proc.poll() is None
                if running and self._runtime_starts() > before:
                    return
            except (RuntimeError, TimeoutError):
                pass
            self.stop()
        raise RuntimeError(f"ray start failed {attempts} times; see {self.temp}/ray-start.log")

    def restart(self) -> None:
        """Stop every Ray process of this head and start a fresh one on the same ports: what a
        head pod's restart does to its Ray cluster (GCS state and Serve applications gone)."""
        self.stop()
        self.start_confirmed()


class TcpRelay:
    """A TCP relay from a free local port to `target_port`, switched on and off by the test.

    A real network fault between a client and a server: while stopped, the port refuses
    connections and every relayed connection is cut, as when a pod's network goes away.
    The same port is reused on every start, so the client needs no new address.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._running = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        # A short timeout so the accept loop notices stop() without a blocked accept().
        listener.settimeout(0.2)
        self._listener = listener
        self._running.set()
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepting.start()

    def stop(self) -> None:
        self._running.clear()
        if self._accepting is not None:
            self._accepting.join(timeout=10)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            # Shut down, not closed: each connection's own thread closes its sockets.
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while self._running.is_set():
            try:
                downstream, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                downstream.close()  # the server itself is down: the client sees a reset
                continue
            with self._lock:
                self._open.update((downstream, upstream))
            threading.Thread(target=self._relay, args=(downstream, upstream), daemon=True).start()

    def _relay(self, downstream: socket.socket, upstream: socket.socket) -> None:
        """Both directions of one connection; both sockets closed once both are done."""
        for sock in (downstream, upstream):
            sock.settimeout(None)
        back = threading.Thread(target=self._pump, args=(upstream, downstream), daemon=True)
        back.start()
        self._pump(downstream, upstream)
        back.join()
        with self._lock:
            self._open.discard(downstream)
            self._open.discard(upstream)
        downstream.close()
        upstream.close()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
            # End of one direction: pass the half-close on, the other direction goes on.
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            # Cut by stop() or by a peer: drop both ends, which also ends the other direction.
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
