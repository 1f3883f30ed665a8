"""Load replay: the Azure conversation trace replayed at 2x against the whole local stack.

`python -m bench.reliability` (or `make bench-reliability`) starts the real local control plane,
the real operator, and a local Ray head with the vLLM CPU engine standing in for the head pod;
it applies one ModelDeployment of the tiny model, waits for Ready, then sends the trace's
requests at their (compressed) arrival times for ten minutes while sampling the resident memory
of the operator, the HAProxy ingress and Serve's controller and replicas. It writes
bench/results/reliability-load.json and reliability-load.md: requests by status, 5xx beyond the
intended 429s, latency, and each process's memory growth over the run (goal: under 10%).
"""

from __future__ import annotations

import sys
from pathlib import Path

# The local cluster and the e2e harness live in e2e/ (imported as the top-level packages
# `cluster` and `lifecycle`, as the e2e tests and bench/control_plane do).
_E2E = str(Path(__file__).resolve().parents[2] / "e2e")
if _E2E not in sys.path:
    sys.path.insert(0, _E2E)
