"""`python -m bench.control_plane [--quick]`: both scenarios on a fresh local control plane;
writes control_plane.json and control_plane.md."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cluster.crds import install_crds
from cluster.localcluster import LocalCluster

from .operator_run import OperatorRun
from .report import goals, loadavg, machine, markdown, summarise
from .scenarios import (
    Settings,
    apply_to_children,
    create_namespace,
    delete_namespace,
    nodes_for,
    reconcile_from_scratch,
)

RESULTS = Path(__file__).resolve().parents[1] / "results"
LATENCY_NS, SCALE_NS = "bench-latency", "bench-scale"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.control_plane", description=__doc__)
    p.add_argument("--quick", action="store_true", help="3 + 3 ModelDeployments (a smoke run)")
    p.add_argument("--latency-deployments", type=int, default=None, help="scenario 1 (50)")
    p.add_argument("--scale-deployments", type=int, default=None, help="scenario 2 (500)")
    p.add_argument("--workers", type=int, default=2, help="worker pods per ModelDeployment")
    p.add_argument(
        "--resync-seconds", type=float, default=None, help="operator flag (its default if unset)"
    )
    p.add_argument("--timeout", type=float, default=600.0, help="per scenario wait, s")
    p.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="where the JSON and markdown go (bench/results; a temp folder with --quick)",
    )
    p.add_argument("--keep", action="store_true", help="keep the cluster folder (logs)")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    latency = args.latency_deployments or (3 if args.quick else 50)
    scale = args.scale_deployments or (3 if args.quick else 500)
    return Settings(latency, scale, args.workers, args.resync_seconds, args.timeout)


def run(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Start a cluster in `workdir`, run both scenarios, return the figures."""
    cluster = LocalCluster(workdir / "cluster", nodes_for(settings))
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"==> cluster ({len(cluster.nodes)} fake GPU nodes) in {workdir}", file=sys.stderr)
    with cluster:
        install_crds(cluster)
        create_namespace(cluster, LATENCY_NS)
        create_namespace(cluster, SCALE_NS)
        first = OperatorRun(
            cluster.kubeconfig, logs / "operator-latency.log", settings.resync_seconds
        )
        print(f"==> apply -> children, {settings.latency_deployments} in turn", file=sys.stderr)
        try:
            latency = apply_to_children(cluster, first, LATENCY_NS, settings)
            # A quiet cluster for scenario 2: the first one's objects gone. With the operator
            # still running, which removes the finalizer kopf puts on objects with a timer.
            delete_namespace(cluster, LATENCY_NS, settings.timeout_s)
        finally:
            first.stop()
        second = OperatorRun(
            cluster.kubeconfig, logs / "operator-scale.log", settings.resync_seconds
        )
        print(f"==> {settings.scale_deployments} reconciled from scratch", file=sys.stderr)
        try:
            scale = reconcile_from_scratch(cluster, second, SCALE_NS, settings)
        finally:
            second.stop()
    return {"latency": latency, "scale": scale}


def build_result(
    settings: Settings, quick: bool, figures: dict[str, Any], load_before: list[float]
) -> dict[str, Any]:
    latency = summarise(figures["latency"]["children_ms"])
    scale = {k: round(v, 2) if isinstance(v, float) else v for k, v in figures["scale"].items()}
    scale["deployments"] = settings.scale_deployments
    checked = goals(latency, scale)
    return {
        "benchmark": "control_plane",
        "mode": "quick" if quick else "full",
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "settings": {
            "latency_deployments": settings.latency_deployments,
            "scale_deployments": settings.scale_deployments,
            "workers": settings.workers,
            "children_per_deployment": settings.workers + 3,
            "operator_resync_seconds": settings.resync_seconds or "operator default",
            "nodes": len(nodes_for(settings)),
        },
        "apply_to_children": latency,
        "apply_to_status": summarise(figures["latency"]["status_ms"]),
        "reconcile_from_scratch": scale,
        "goals": checked,
        "passed": all(g["pass"] for g in checked.values()),
        "machine": machine(),
        "load_before": load_before,
        "load_after": loadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from(args)
    out_dir: Path = args.out_dir or (
        Path(tempfile.mkdtemp(prefix="bench-cp-")) if args.quick else RESULTS
    )
    workdir = Path(tempfile.mkdtemp(prefix="modeldeploy-bench-"))
    load_before = loadavg()
    started = time.monotonic()
    try:
        figures = run(settings, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result = build_result(settings, args.quick, figures, load_before)
    result["wall_s"] = round(time.monotonic() - started, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "control_plane.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "control_plane.md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {out_dir / 'control_plane.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
