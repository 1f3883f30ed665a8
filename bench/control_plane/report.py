"""Figures, goals and machine facts of a run, as JSON and as a short markdown summary."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path
from typing import Any

from cluster.binaries import read_versions

GOALS = {
    "apply_to_children_p50_ms": 300.0,
    "reconcile_from_scratch_total_s": 60.0,
    "operator_peak_rss_mb": 200.0,
}


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): a value that was really observed."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summarise(samples_ms: list[float]) -> dict[str, Any]:
    return {
        "count": len(samples_ms),
        "p50_ms": round(percentile(samples_ms, 50), 1),
        "p95_ms": round(percentile(samples_ms, 95), 1),
        "mean_ms": round(statistics.fmean(samples_ms), 1),
        "min_ms": round(min(samples_ms), 1),
        "max_ms": round(max(samples_ms), 1),
        "samples_ms": [round(s, 1) for s in samples_ms],
    }


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine() -> dict[str, Any]:
    cpu_model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    versions = read_versions()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kubernetes": versions.get("KUBERNETES_VERSION"),
        "etcd": versions.get("ETCD_VERSION"),
        "kwok": versions.get("KWOK_VERSION"),
    }


def goals(latency: dict[str, Any], scale: dict[str, Any]) -> dict[str, Any]:
    values = {
        "apply_to_children_p50_ms": latency["p50_ms"],
        "reconcile_from_scratch_total_s": scale["total_s"],
        "operator_peak_rss_mb": scale["peak_rss_mb"],
    }
    return {
        key: {"goal_max": GOALS[key], "value": value, "pass": value <= GOALS[key]}
        for key, value in values.items()
    }


def cpu_line(scale: dict[str, Any]) -> str:
    """Scenario 2's CPU time per process, largest first: which side the time went to."""
    used = sorted(scale["cpu_seconds"].items(), key=lambda kv: -kv[1])
    total = sum(v for _, v in used)
    parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in used)
    cores = total / scale["total_s"] if scale["total_s"] else 0.0
    return (
        f"CPU time during scenario 2: {parts} ({total:.0f} s in all, {cores:.2f} cores on "
        "average over the run)."
    )


def markdown(result: dict[str, Any]) -> str:
    s, lat, scale = (
        result["settings"],
        result["apply_to_children"],
        result["reconcile_from_scratch"],
    )
    m = result["machine"]
    rows = [
        ("apply -> children p50", f"{lat['p50_ms']:.0f} ms", "apply_to_children_p50_ms"),
        ("apply -> children p95", f"{lat['p95_ms']:.0f} ms", None),
        ("apply -> status p50", f"{result['apply_to_status']['p50_ms']:.0f} ms", None),
        (
            f"{s['scale_deployments']} reconciled from scratch",
            f"{scale['total_s']:.1f} s",
            "reconcile_from_scratch_total_s",
        ),
        ("operator peak RSS", f"{scale['peak_rss_mb']:.0f} MB", "operator_peak_rss_mb"),
    ]
    lines = [
        "# Control-plane benchmark",
        "",
        f"`python -m bench.control_plane` ({result['mode']} run, {result['finished_at']}). "
        f"Real kube-apiserver, etcd, scheduler, controller-manager, kwok nodes; the real "
        f"operator process with its default settings; {s['workers']} workers per "
        f"ModelDeployment (children: head pod, 2 Services, {s['workers']} worker pods).",
        "",
        "| measure | value | goal | pass |",
        "|---|---|---|---|",
    ]
    for label, value, key in rows:
        goal = result["goals"][key] if key else None
        limit = f"<= {goal['goal_max']:g}" if goal else ""
        verdict = ("yes" if goal["pass"] else "**no**") if goal else ""
        lines.append(f"| {label} | {value} | {limit} | {verdict} |")
    lines += [
        "",
        f"Scenario 1: {s['latency_deployments']} ModelDeployments created one after another, "
        "each timed from the create call returning to the watch event of its last child. "
        f"Scenario 2: {s['scale_deployments']} created with the operator stopped; timed from "
        f"starting the operator process (first child after {scale['first_child_s']:.1f} s) to "
        f"the last child ({scale['all_children_s']:.1f} s) and the last status with "
        f"observedGeneration ({scale['all_statuses_s']:.1f} s). RSS is VmHWM of the operator "
        f"and any process under it; the operator held at most {scale['peak_open_sockets']} "
        "sockets open.",
        "",
        cpu_line(scale),
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, shared with other "
        f"work: load average {result['load_before']} before, {result['load_after']} after. "
        f"Kubernetes {m['kubernetes']}, etcd {m['etcd']}, kwok {m['kwok']}, Python {m['python']}.",
        "",
    ]
    if result.get("notes"):
        lines += [result["notes"], ""]
    return "\n".join(lines)
