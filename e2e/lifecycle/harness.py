"""Processes the operator e2e tests run beside the cluster: the operator itself and a local Ray
head standing in for the head pod (pods do not really run on kwok nodes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
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
