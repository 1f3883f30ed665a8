"""`python -m bench.reliability [--minutes 10] [--speed 2] [--quick]`: the load replay.

Writes reliability-load.json and reliability-load.md (bench/results, or a temp folder with
--quick). See the package docstring for what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cluster.crds import install_crds
from cluster.kubeclient import api_client
from cluster.localcluster import DEFAULT_NODES, LocalCluster, wait_until
from kubernetes import client
from lifecycle.conftest import TINY_ENGINE, TINY_RESOURCES, ModelDeployments
from lifecycle.harness import LocalRayHead, OperatorProcess

from bench.autoscale.trace import load_trace
from bench.control_plane.operator_run import descendants
from bench.control_plane.report import loadavg, machine
from modeldeploy_serving.tiny_model import make_tiny_model

from .plan import PlannedRequest, memory_growth, percentile, plan_requests, unintended_errors

RESULTS = Path(__file__).resolve().parents[1] / "results"
NAMESPACE = "load-replay"
MODEL = "tiny"
# The tiny model's window is 256 tokens (TINY_ENGINE): the trace's conversation lengths (about
# 1,000 in, 200 out on average) are scaled by 1/8 and capped so every request fits.
TOKEN_SCALE, MAX_PROMPT, MAX_OUTPUT = 1 / 8, 160, 64
SAMPLE_EVERY_S = 5.0
GROWTH_WINDOW_S = 60.0
GROWTH_GOAL = 0.10
REQUEST_TIMEOUT_S = 120.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__)
    p.add_argument("--minutes", type=float, default=10.0, help="replay length (wall clock)")
    p.add_argument("--speed", type=float, default=2.0, help="trace time compression")
    p.add_argument("--quick", action="store_true", help="one minute, results in a temp folder")
    p.add_argument("--out-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.minutes = 1.0
    if args.out_dir is None:
        args.out_dir = Path(tempfile.mkdtemp(prefix="reliability-")) if args.quick else RESULTS
    return args


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tracked_processes(operator_pid: int, ray_pid: int) -> dict[str, int]:
    """The processes whose memory must stay flat, by role."""
    found = {"operator": operator_pid}
    for pid in descendants(ray_pid):
        command = _cmdline(pid)
        if command.startswith("haproxy") or "/haproxy " in command:
            found.setdefault("haproxy", pid)
        elif command.startswith("ray::ServeController"):
            found["serve-controller"] = pid
        elif command.startswith("ray::ProxyActor"):
            found["serve-proxy"] = pid
        elif command.startswith("ray::ServeReplica"):
            found[f"replica-{pid}"] = pid
    return found


class MemorySampler:
    """RSS of each tracked process every few seconds, in a thread."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = processes
        self.samples: dict[str, list[tuple[float, int]]] = {name: [] for name in processes}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic() - self._start
            for name, pid in self.processes.items():
                kb = _rss_kb(pid)
                if kb:
                    self.samples[name].append((now, kb))
            self._stop.wait(SAMPLE_EVERY_S)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


async def _one(
    http: httpx.AsyncClient, url: str, request: PlannedRequest, started: float
) -> tuple[str, float]:
    await asyncio.sleep(max(0.0, started + request.at_s - time.monotonic()))
    sent = time.monotonic()
    body = {
        "model": MODEL,
        # Token ids give exact prompt lengths whatever the tokenizer.
        "prompt": [100 + i % 50 for i in range(request.prompt_tokens)],
        "max_tokens": request.output_tokens,
        "ignore_eos": True,
        "temperature": 0,
    }
    try:
        response = await http.post(url, json=body)
        return str(response.status_code), time.monotonic() - sent
    except httpx.HTTPError as error:
        return type(error).__name__, time.monotonic() - sent


async def replay(base_url: str, plan: list[PlannedRequest]) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=512)
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as http:
        started = time.monotonic()
        answers = await asyncio.gather(
            *(_one(http, f"{base_url}/completions", r, started) for r in plan)
        )
        wall = time.monotonic() - started
    statuses = Counter(status for status, _ in answers)
    ok = [seconds * 1000 for status, seconds in answers if status == "200"]
    return {
        "requests": len(plan),
        "wall_s": round(wall, 1),
        "statuses": dict(statuses),
        "unintended_errors": unintended_errors(dict(statuses)),
        "latency_ms_ok": {
            "p50": round(percentile(ok, 50), 1),
            "p99": round(percentile(ok, 99), 1),
        },
    }


def spec(model: Path) -> dict[str, Any]:
    return {
        "model": {"source": f"file://{model}", "servedModelName": MODEL},
        "engine": TINY_ENGINE,
        "resources": TINY_RESOURCES,
        "scaling": {
            "minReplicas": 1,
            "maxReplicas": 2,
            "targetQueueDepth": 4,
            "scaleDownDelaySeconds": 30,
            "maxQueuedRequests": 64,
        },
    }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    trace = load_trace(duration_s=args.minutes * 60 * args.speed, speedup=args.speed)
    plan = plan_requests(
        trace.arrival_s,
        trace.prompt_tokens,
        trace.output_tokens,
        TOKEN_SCALE,
        MAX_PROMPT,
        MAX_OUTPUT,
    )
    model = make_tiny_model(Path("/tmp/modeldeploy/models/tiny-llama"))
    ray = LocalRayHead()
    with LocalCluster(workdir / "cluster", DEFAULT_NODES) as cluster:
        install_crds(cluster)
        cluster.api("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        operator = OperatorProcess(
            cluster.kubeconfig, ray.dashboard_url, ray.metrics_url, ray.serve_port, workdir
        )
        print(f"==> local Ray head and operator (logs in {workdir})", file=sys.stderr)
        ray.start_confirmed()
        try:
            operator.start()
            with api_client(cluster) as api:
                wait_until(
                    lambda: client.CoreV1Api(api).list_namespaced_service_account(NAMESPACE).items,
                    60,
                    "the default ServiceAccount",
                )
                mds = ModelDeployments(api, NAMESPACE)
                mds.create(MODEL, spec(model))
                mds.wait_condition(MODEL, "Ready", "True", "Serving", timeout=600)
                base_url = f"http://127.0.0.1:{ray.serve_port}/v1"
                processes = tracked_processes(operator.proc.pid, ray.proc.pid)  # type: ignore[union-attr]
                print(
                    f"==> replaying {len(plan)} requests over {args.minutes:g} min "
                    f"(trace at {args.speed:g}x); sampling {sorted(processes)}",
                    file=sys.stderr,
                )
                with MemorySampler(processes) as sampler:
                    load = asyncio.run(replay(base_url, plan))
                final = mds.get(MODEL).get("status") or {}
            assert operator.proc is not None
            operator_alive = operator.proc.poll() is None
        finally:
            operator.stop()
            ray.stop()
    memory = {
        name: memory_growth(samples, GROWTH_WINDOW_S)
        for name, samples in sampler.samples.items()
        if samples
    }
    return {
        "load": load,
        "memory": memory,
        "operator_alive": operator_alive,
        "final_status": {
            k: final.get(k) for k in ("phase", "replicas", "readyReplicas", "targetReplicas")
        },
    }


def markdown(result: dict[str, Any]) -> str:
    load, s, m = result["load"], result["settings"], result["machine"]
    lines = [
        "# Load replay",
        "",
        f"`python -m bench.reliability` ({result['mode']} run, {result['finished_at']}): "
        f"{s['minutes']:g} minutes of the Azure LLM conversation trace at {s['speed']:g}x "
        f"({load['requests']} requests), token counts scaled by {s['token_scale']:g} and capped "
        f"at {s['max_prompt']} in / {s['max_output']} out for the tiny model, sent at their "
        "arrival times to the endpoint of one ModelDeployment (real operator, real control "
        "plane, local Ray with the vLLM CPU engine, HAProxy ingress; 1 to 2 replicas, local "
        "queue bound 64).",
        "",
        "| answers | count |",
        "|---|---|",
        *(f"| {status} | {n} |" for status, n in sorted(load["statuses"].items())),
        "",
        f"Unintended errors (anything but 200 and the queue bound's 429): "
        f"**{load['unintended_errors']}**. Latency of successful requests: p50 "
        f"{load['latency_ms_ok']['p50']:.0f} ms, p99 {load['latency_ms_ok']['p99']:.0f} ms. "
        f"Operator alive at the end: {result['operator_alive']}.",
        "",
        f"| process | first {GROWTH_WINDOW_S:.0f} s MB | last {GROWTH_WINDOW_S:.0f} s MB "
        "| peak MB | growth | goal < 10% |",
        "|---|---|---|---|---|---|",
    ]
    for name, g in sorted(result["memory"].items()):
        lines.append(
            f"| {name} | {g['first_mb']:.0f} | {g['last_mb']:.0f} | {g['peak_mb']:.0f} "
            f"| {g['growth']:+.1%} | {'yes' if g['growth'] < GROWTH_GOAL else '**no**'} |"
        )
    lines += [
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, shared with other "
        f"work: load average before {result['load_before']}, "
        f"after {result['load_after']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="reliability-run-"))
    load_before = loadavg()
    figures = run(args, workdir)
    result = {
        "benchmark": "reliability-load",
        "mode": "quick" if args.quick else "full",
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "settings": {
            "minutes": args.minutes,
            "speed": args.speed,
            "token_scale": TOKEN_SCALE,
            "max_prompt": MAX_PROMPT,
            "max_output": MAX_OUTPUT,
            "growth_window_s": GROWTH_WINDOW_S,
        },
        **figures,
        "passed": figures["load"]["unintended_errors"] == 0
        and figures["operator_alive"]
        and all(m["growth"] < GROWTH_GOAL for m in figures["memory"].values()),
        "machine": machine(),
        "load_before": load_before,
        "load_after": loadavg(),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "reliability-load.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / "reliability-load.md").write_text(markdown(result))
    print(markdown(result))
    print(f"==> {args.out_dir}/reliability-load.{{json,md}}", file=sys.stderr)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
