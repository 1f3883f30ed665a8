"""`modeldeploy operator` as a process with any flags and peer id.

The lifecycle harness (e2e/lifecycle/harness.py) fixes both; the install tests need an operator
limited to listed namespaces and two replicas with distinct peer ids.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cluster.localcluster import free_port, wait_until


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def operator_process(
    kubeconfig: Path, log: Path, pod_id: str, *flags: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`modeldeploy operator` with the given flags and kopf peer id (POD_ID, as the chart sets it
    from the pod name), live (its /healthz answers) until the block exits."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "modeldeploy_operator.cli",
        "operator",
        f"--kubeconfig={kubeconfig}",
        f"--dashboard-url-template=http://127.0.0.1:{free_port()}",
        "--resync-seconds=2",
        "--metrics-port=0",
        f"--liveness=http://127.0.0.1:{port}/healthz",
        *flags,
    ]
    env = {**os.environ, "POD_ID": pod_id}
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until(
            lambda: proc.poll() is not None or _answers(f"http://127.0.0.1:{port}/healthz"),
            60,
            "the operator's health endpoint",
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
