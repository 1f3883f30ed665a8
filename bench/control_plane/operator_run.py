"""The operator as a user runs it out of cluster, with production defaults, and its memory.

Unlike the e2e harness's operator (fast resync, verbose logs for debugging), this one keeps the
command's defaults (resync interval, log level, metrics endpoint on), so what is measured is what
a deployment runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
from cluster.localcluster import _die_with_parent, free_port


def _status_kb(pid: int, field: str) -> int:
    """A `VmHWM:`-style line of /proc/<pid>/status in kB; 0 when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a live process so far; 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children of all its threads, recursively)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


class OperatorRun:
    """`modeldeploy operator` against a kubeconfig; its log goes to `log`."""

    def __init__(self, kubeconfig: Path, log: Path, resync_seconds: float | None) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.resync_seconds = resync_seconds
        self.proc: subprocess.Popen[bytes] | None = None
        self.liveness_url = f"http://127.0.0.1:{free_port()}/healthz"
        # Peak RSS of processes that exit before the end (none expected; kept for honesty).
        self._gone_peaks: dict[int, int] = {}

    def command(self) -> list[str]:
        # A closed port: no Ray is needed; the operator reports DashboardUnreachable.
        dashboard = f"http://127.0.0.1:{free_port()}"
        command = [
            sys.executable,
            "-m",
            "modeldeploy_operator.cli",
            "operator",
            f"--kubeconfig={self.kubeconfig}",
            f"--dashboard-url-template={dashboard}",
            f"--metrics-port={free_port()}",
            f"--liveness={self.liveness_url}",
        ]
        if self.resync_seconds is not None:
            command.append(f"--resync-seconds={self.resync_seconds}")
        return command

    def start(self) -> float:
        """Start it; returns the monotonic time just before the process was created."""
        env = {**os.environ, "POD_ID": "bench-operator"}
        started = time.monotonic()
        with self.log.open("ab") as out:
            # Like the cluster's components: a benchmark killed outright leaves no operator.
            self.proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent,
            )
        return started

    def wait_live(self, timeout: float = 60.0) -> None:
        """Until kopf's liveness endpoint answers: the operator has started its watches."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"the operator exited; see {self.log}")
            try:
                with urllib.request.urlopen(self.liveness_url, timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"the operator was not live after {timeout:.0f} s; see {self.log}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def peak_rss_kb(self) -> int:
        """VmHWM (peak resident set) of the operator plus every process under it."""
        if self.proc is None:
            return 0
        pids = [self.proc.pid, *descendants(self.proc.pid)]
        for pid in pids[1:]:
            self._gone_peaks[pid] = max(self._gone_peaks.get(pid, 0), _status_kb(pid, "VmHWM"))
        own = _status_kb(self.proc.pid, "VmHWM")
        return own + sum(self._gone_peaks.values())

    def open_sockets(self) -> int:
        """Sockets the operator holds open now (its connections to the apiserver, mostly); 0
        when it is not running. Each TLS connection of kopf's costs it ~300 kB of buffers, so
        this is the first thing to look at when its peak RSS grows."""
        if self.proc is None:
            return 0
        try:
            return len(psutil.Process(self.proc.pid).net_connections(kind="all"))
        except psutil.Error:
            return 0

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
