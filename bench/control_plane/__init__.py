"""Control-plane benchmark: the real operator against the real local control plane.

Two measurements (`python -m bench.control_plane`):

1. apply -> children: ModelDeployments created one after another; for each, the time from the
   create call returning to the moment its head pod, both Services and every worker pod exist.
2. reconcile from scratch: many ModelDeployments created while the operator is stopped; then
   the operator starts and the clock runs until every one has all its children and a status
   with observedGeneration. The operator's peak RSS is read from /proc.

Times come from watch events (one streaming watch per kind, stdlib only), so the measuring
adds no polling load to the apiserver the operator is competing for. Pods do not run (kwok
marks them Ready), and the dashboard URL points at a closed port, so no Ray is needed: the
operator reports DashboardUnreachable and still creates every child.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The local cluster lives in e2e/cluster (stdlib, shared with the e2e tier and the Makefile),
# imported as the top-level package `cluster` like the e2e tests do.
_E2E = str(Path(__file__).resolve().parents[2] / "e2e")
if _E2E not in sys.path:
    sys.path.insert(0, _E2E)
