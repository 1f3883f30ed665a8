"""Cold start on the real node: `kubectl apply` of a ModelDeployment -> its first token.

`python -m bench.cold_start` (`make bench-cold-start`) starts a control plane with a real kubelet
node (e2e/cluster/node.py), installs the chart with the images built here, and then, RUNS times:
removes the serving image from the node, applies the tiny CPU ModelDeployment in a fresh
namespace, and streams one chat request at its Service until the first token arrives. The
phases come from what the cluster records (pod events and conditions, the ModelDeployment's
Ready condition) plus the client's own clock, all measured from the apply:

- image pull: the head pod's Pulling -> Pulled events (the worker pulls the same image);
- container start: Pulled -> the head's Started event;
- Ray head up: the head pod Ready (its GCS health check);
- worker joined: the worker pod Ready (its raylet's health check, once it joined the head);
- Serve running: the ModelDeployment Ready (Serve reports the application RUNNING only after
  the replica's constructor, which loads the engine, returned: from outside, "engine loaded"
  and "Serve running" are this one moment);
- endpoint answers: the first streamed token at the Service.

Results in bench/results/cold-start.json and .md; `summary.apply_to_first_token_s` is the
median over the runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The cluster and the tier's workload live in e2e/ (shared with the tests), imported as the
# top-level packages `cluster` and `realnode`, as the e2e tests do.
_E2E = str(Path(__file__).resolve().parents[2] / "e2e")
if _E2E not in sys.path:
    sys.path.insert(0, _E2E)
