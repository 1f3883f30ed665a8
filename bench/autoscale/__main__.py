"""`python -m bench.autoscale`: replay a trace under each scaler; write JSON and a plot."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from modeldeploy_serving.autoscaling import AutoscalingConfig

from .report import plot, summarise
from .scalers import QueueDepthScaler, RayDefaultScaler, hpa_running, keda_waiting
from .service import DEFAULT_CALIBRATION, load_calibration
from .sim import Scaler, simulate
from .trace import DEFAULT_TRACE, load_trace

RESULTS = Path(__file__).resolve().parents[1] / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.autoscale", description=__doc__)
    p.add_argument(
        "--trace",
        type=Path,
        default=DEFAULT_TRACE,
        help="CSV: TIMESTAMP, ContextTokens, GeneratedTokens",
    )
    p.add_argument(
        "--calibration", type=Path, default=DEFAULT_CALIBRATION, help="replica speed (JSON)"
    )
    p.add_argument("--start", type=float, default=0.0, help="window start, seconds into the trace")
    p.add_argument("--duration", type=float, default=None, help="window length in trace seconds")
    p.add_argument(
        "--speedup", type=float, default=1.0, help="replay the window this many times faster"
    )
    p.add_argument(
        "--cold-start",
        type=float,
        default=None,
        help="replica cold start, s (calibration's by default)",
    )
    p.add_argument("--dt", type=float, default=0.25, help="simulation step, s")
    p.add_argument("--min-replicas", type=int, default=1)
    p.add_argument("--max-replicas", type=int, default=16)
    p.add_argument("--target-queue-depth", type=float, default=2.0)
    p.add_argument("--scale-up-stabilization", type=float, default=1.0)
    p.add_argument("--scale-down-delay", type=float, default=300.0)
    p.add_argument("--hpa-target-running", type=float, default=32.0)
    p.add_argument("--keda-threshold", type=float, default=5.0)
    p.add_argument("--slo-ttft", type=float, default=2.0, help="time-to-first-token SLO, s")
    p.add_argument("--scalers", default="ours,ray,hpa,keda", help="comma-separated subset")
    p.add_argument("--json", type=Path, default=RESULTS / "autoscale.json")
    p.add_argument("--png", type=Path, default=RESULTS / "autoscale-trace.png")
    p.add_argument("--no-plot", action="store_true")
    return p.parse_args(argv)


def build_scalers(args: argparse.Namespace) -> dict[str, Scaler]:
    config = AutoscalingConfig(
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        target_queue_depth=args.target_queue_depth,
        scale_up_stabilization_s=args.scale_up_stabilization,
        scale_down_delay_s=args.scale_down_delay,
    )
    lo, hi = args.min_replicas, args.max_replicas
    return {
        "ours": QueueDepthScaler(config),
        "ray": RayDefaultScaler(min_replicas=lo, max_replicas=hi),
        "hpa": hpa_running(lo, hi, args.hpa_target_running),
        "keda": keda_waiting(lo, hi, args.keda_threshold),
    }


def compare(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Does ours meet the goal: the best SLO attainment at no more replica-seconds than the
    best baseline (the baseline with the best SLO attainment, the cheaper one on a tie)?"""
    if "ours" not in summaries or len(summaries) < 2:
        return {}
    ours = summaries["ours"]
    baselines = {k: v for k, v in summaries.items() if k != "ours"}
    best = min(
        baselines, key=lambda k: (-baselines[k]["slo_attainment"], baselines[k]["replica_seconds"])
    )
    return {
        "best_baseline": best,
        "ours_slo_at_least_every_baseline": all(
            ours["slo_attainment"] >= v["slo_attainment"] for v in baselines.values()
        ),
        "ours_replica_seconds_vs_best_baseline": round(
            ours["replica_seconds"] / baselines[best]["replica_seconds"], 3
        ),
        "ours_fewest_replica_seconds": all(
            ours["replica_seconds"] <= v["replica_seconds"] for v in baselines.values()
        ),
        "fewest_direction_changes": min(summaries, key=lambda k: summaries[k]["direction_changes"]),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    trace = load_trace(
        args.trace, start_s=args.start, duration_s=args.duration, speedup=args.speedup
    )
    calibration = load_calibration(args.calibration, cold_start_s=args.cold_start)
    scalers = build_scalers(args)
    chosen = [name.strip() for name in args.scalers.split(",") if name.strip()]
    results, summaries = [], {}
    for name in chosen:
        began = time.perf_counter()
        result = simulate(
            trace, calibration, scalers[name], min_replicas=args.min_replicas, dt=args.dt
        )
        summaries[name] = {
            "scaler": result.scaler,
            **summarise(result, slo_ttft_s=args.slo_ttft, start_replicas=max(1, args.min_replicas)),
            "decisions": [[round(t, 2), n] for t, n in result.decisions],
        }
        results.append(result)
        print(f"{result.scaler}: {time.perf_counter() - began:.1f} s", file=sys.stderr)
    report = {
        "trace": {
            "file": args.trace.name,
            "requests": len(trace),
            "window_start_s": args.start,
            "window_duration_s": args.duration,
            "speedup": args.speedup,
            "duration_s": round(trace.duration_s, 1),
        },
        "calibration": {k: v for k, v in vars(calibration).items()},
        "settings": {
            "dt_s": args.dt,
            "min_replicas": args.min_replicas,
            "max_replicas": args.max_replicas,
            "slo_ttft_s": args.slo_ttft,
            "ours": scalers["ours"].config.model_dump(),  # type: ignore[attr-defined]
            "hpa_target_running": args.hpa_target_running,
            "keda_threshold": args.keda_threshold,
        },
        "results": summaries,
        "comparison": compare(summaries),
    }
    if not args.no_plot:
        title = (
            f"{args.trace.name} ({len(trace)} requests, x{args.speedup:g}), "
            f"{calibration.name}, cold start {calibration.cold_start_s:g} s"
        )
        plot(results, args.png, title=title)
        report["plot"] = args.png.name
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    for name, s in report["results"].items():
        print(
            f"{name:5} SLO {s['slo_attainment']:.4f}  wait p50/p95/p99 "
            f"{s['queue_wait_s']['p50']}/{s['queue_wait_s']['p95']}/{s['queue_wait_s']['p99']} s  "
            f"replica-s {s['replica_seconds']:.0f}  changes {s['direction_changes']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
