"""The control-plane benchmark runs end to end on a short setting and writes its results.

It checks the shape of what `python -m bench.control_plane --quick` writes, not the goals: the
goals are for the full run (`make bench-control-plane`) on a quiet machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(900)
def test_quick_run_writes_results(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.control_plane", "--quick", f"--out-dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    result = json.loads((tmp_path / "control_plane.json").read_text())
    assert result["mode"] == "quick"
    assert result["settings"]["latency_deployments"] == 3
    assert result["settings"]["scale_deployments"] == 3
    latency = result["apply_to_children"]
    assert latency["count"] == 3 and len(latency["samples_ms"]) == 3
    assert 0 <= latency["p50_ms"] <= latency["p95_ms"]
    scale = result["reconcile_from_scratch"]
    assert scale["total_s"] > 0 and scale["peak_rss_mb"] > 0
    assert {"operator", "kube-apiserver"} <= set(scale["cpu_seconds"])
    assert set(result["goals"]) == {
        "apply_to_children_p50_ms",
        "reconcile_from_scratch_total_s",
        "operator_peak_rss_mb",
    }
    assert all(isinstance(g["pass"], bool) for g in result["goals"].values())
    assert {"cpus", "kubernetes"} <= set(result["machine"])
    assert (tmp_path / "control_plane.md").read_text().startswith("# Control-plane benchmark")
