"""OpenAI-compatible servers as child processes: start on a free port, wait, stop by pid.

The serving tests and the overhead benchmark run real servers (the modeldeploy serving path, and
bare `vllm.entrypoints.openai.api_server`) in processes they own, so a crash or a leftover Ray
never takes the test process with it, and stopping is a signal to a known pid.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from modeldeploy_serving.config import ServingConfig
from modeldeploy_serving.ingress import IngressMode
from modeldeploy_serving.local import free_port, wait_until_ready

START_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 60.0


class ServerProcess:
    """A server child process; `base_url` answers /v1/models once `start()` returns."""

    def __init__(
        self,
        argv: list[str],
        port: int,
        log_path: Path,
        label: str,
        env: Mapping[str, str] | None = None,
        ready_path: str = "/v1/models",
    ) -> None:
        self.argv = argv
        self.ready_path = ready_path
        self.port = port
        self.log_path = log_path
        self.label = label
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> None:
        """Start the process without waiting (several servers can then start side by side)."""
        env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"} | self.env
        with self.log_path.open("ab") as log:
            # A session of its own: a Ctrl-C at the terminal reaches the parent, which then stops
            # this child in order instead of every process at once.
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> str:
        """Wait until the endpoint answers; raise with the log's tail if the process died."""
        if self.process is None:
            raise RuntimeError(f"{self.label} was not launched")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with {self.process.returncode} while starting; "
                    f"log: {self.log_path}\n{tail(self.log_path)}"
                )
            try:
                wait_until_ready(self.base_url, timeout_s=2.0, path=self.ready_path)
                return self.base_url
            except TimeoutError:
                continue
        self.stop()
        raise TimeoutError(f"{self.label} not ready after {timeout_s:.0f} s; log: {self.log_path}")

    def start(self, timeout_s: float = START_TIMEOUT_S) -> str:
        self.launch()
        return self.wait_ready(timeout_s)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # SIGINT: both servers treat it as Ctrl-C and clean up what they started.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # Still there: end the child's own process group (it was started as its leader).
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.25
) -> Any:
    """Poll until `condition()` is truthy and return its value; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes the connection (the socket's own timeout
    bounds each read)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def modeldeploy_server(
    config: ServingConfig, log_dir: Path, ingress: IngressMode, port: int | None = None
) -> ServerProcess:
    """The modeldeploy serving path (local Ray + Serve) for `config`."""
    port = port or free_port()
    config_file = Path(tempfile.mkstemp(prefix="serving-", suffix=".json", dir=log_dir)[1])
    config_file.write_text(config.to_json())
    argv = [sys.executable, "-m", "modeldeploy_serving.local", str(config_file)]
    argv += ["--port", str(port), "--ingress", ingress]
    return ServerProcess(argv, port, log_dir / f"modeldeploy-{ingress}-{port}.log", ingress)


def bare_vllm_server(
    config: ServingConfig,
    log_dir: Path,
    port: int | None = None,
    api_key: str | None = None,
) -> ServerProcess:
    """Bare vLLM's OpenAI server with the very same engine arguments. `api_key`: required of
    every /v1 request; passed in the environment, so it is in no argument list or log."""
    port = port or free_port()
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", *config.vllm_args()]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    if api_key is None:
        return ServerProcess(argv, port, log_dir / f"bare-vllm-{port}.log", "bare vLLM")
    return ServerProcess(
        argv,
        port,
        log_dir / f"bare-vllm-{port}.log",
        "bare vLLM",
        env={"VLLM_API_KEY": api_key},
        ready_path="/health",
    )
