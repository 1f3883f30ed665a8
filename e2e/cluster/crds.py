"""modeldeploy's CRDs on a local cluster: what the operator e2e tests and the control-plane
benchmark both need before an operator can start."""

from __future__ import annotations

from pathlib import Path

import yaml

from .localcluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
PEERING = {
    "apiVersion": "kopf.dev/v1",
    "kind": "ClusterKopfPeering",
    "metadata": {"name": "modeldeploy"},
}


def install_crds(cluster: LocalCluster) -> None:
    """The ModelDeployment CRD and kopf's peering CRDs, Established, plus the peering object."""
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        cluster.kubectl("apply", "--server-side", "-f", str(path))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/modeldeployments.modeldeploy.dev",
        "crd/clusterkopfpeerings.kopf.dev",
    )
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(PEERING))
