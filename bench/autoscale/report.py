"""Figures from simulation results: latency percentiles, SLO attainment, cost, stability; plot."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from .sim import SimResult


def _steps(decisions: list[tuple[float, int]], start: int) -> list[tuple[float, int]]:
    """(time, +1 or -1) for every decision that moved the target."""
    out, previous = [], start
    for t, target in decisions:
        if target != previous:
            out.append((t, 1 if target > previous else -1))
        previous = target
    return out


def direction_changes(decisions: list[tuple[float, int]], start: int) -> int:
    """How often the target reversed direction (up then down, or down then up)."""
    signs = [sign for _, sign in _steps(decisions, start)]
    return sum(1 for a, b in itertools.pairwise(signs) if a != b)


def _percentiles(values: np.ndarray[Any, Any]) -> dict[str, float | None]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(finite, [50, 95, 99])
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(finite.max()), 3),
    }


def summarise(result: SimResult, *, slo_ttft_s: float, start_replicas: int) -> dict[str, Any]:
    ttft = result.ttft_s
    answered = np.isfinite(ttft)
    # A request never answered (the run ended first) misses the SLO; NaN compares False.
    within = np.zeros(len(ttft), dtype=bool)
    within[answered] = ttft[answered] <= slo_ttft_s
    h = result.history
    replicas = h.values["replicas"][: h.size]
    queue = h.values["engine_waiting"][: h.size] + h.values["handle_queued"][: h.size]
    steps = _steps(result.decisions, start_replicas)
    ups = [t for t, sign in steps if sign > 0]
    return {
        "requests": len(ttft),
        "unanswered": int((~answered).sum()),
        "queue_wait_s": _percentiles(result.queue_wait_s),
        "ttft_s": _percentiles(ttft),
        "slo_attainment": round(float(within.mean()), 4) if len(ttft) else None,
        "slo_misses": int((~within).sum()),
        "replica_seconds": round(result.replica_seconds, 1),
        "mean_replicas": round(float(result.replica_seconds / (h.size * h.dt)), 3),
        "max_replicas": int(replicas.max()) if replicas.size else 0,
        "scale_events": len(steps),
        "scale_ups": len(ups),
        "scale_downs": len(steps) - len(ups),
        "direction_changes": direction_changes(result.decisions, start_replicas),
        "max_queue": float(queue.max()) if queue.size else 0.0,
        "first_scale_up_s": round(ups[0], 2) if ups else None,
    }


def plot(results: list[SimResult], path: Path, *, title: str) -> None:
    """One row per scaler: queue depth (left axis) and replicas (right axis) over time.

    All rows share both scales, so heights compare across scalers.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    def queue_of(r: SimResult) -> np.ndarray[Any, Any]:
        h = r.history
        return h.values["engine_waiting"][: h.size] + h.values["handle_queued"][: h.size]

    queue_top = max(1.0, *(float(queue_of(r).max()) for r in results)) * 1.3
    replica_top = max(float(r.history.values["replicas"].max()) for r in results) + 1
    fig, axes = plt.subplots(len(results), 1, figsize=(12, 2.4 * len(results)), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, result in zip(axes, results, strict=True):
        h = result.history
        t = h.t[: h.size] / 60.0
        ax.fill_between(t, queue_of(result), step="post", color="tab:red", alpha=0.4, lw=0)
        ax.set_yscale("symlog", linthresh=10)
        ax.set_ylim(0, queue_top)
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.set_ylabel("queue", color="tab:red")
        right = ax.twinx()
        right.step(t, h.values["replicas"][: h.size], where="post", color="tab:blue", lw=1.3)
        right.step(t, h.values["ready"][: h.size], where="post", color="tab:blue", lw=0.8, ls=":")
        right.set_ylim(0, replica_top)
        right.set_ylabel("replicas", color="tab:blue")
        ax.set_title(result.scaler, fontsize=10, loc="left")
    axes[-1].set_xlabel(
        "minutes (replicas: solid asked for, dotted ready; queue: waiting requests)"
    )
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
