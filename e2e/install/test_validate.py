"""Every manifest the chart renders, in each values mode, passes the real apiserver's validation
(`kubectl apply --dry-run=server`: schemas, defaulting, admission), without creating anything."""

from __future__ import annotations

import pytest
import yaml
from cluster.localcluster import LocalCluster

from .chart import ROOT, VALUE_MODES, documents, render

# Kinds whose CRDs this cluster does not have (the Prometheus Operator's); checked by helm lint.
NOT_SERVED = {"ServiceMonitor"}


@pytest.fixture(scope="module")
def crds(cluster: LocalCluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


@pytest.mark.parametrize("mode", sorted(VALUE_MODES))
def test_rendered_manifests_pass_server_side_dry_run(
    cluster: LocalCluster, crds: None, namespace: str, mode: str
) -> None:
    # Listed namespaces must exist for their Roles to validate: use the test's own namespace.
    sets = [a.replace("{team-a,team-b}", f"{{{namespace}}}") for a in VALUE_MODES[mode]]
    docs = documents(render(*sets, release="md-validate", namespace=namespace))
    served = [doc for doc in docs if doc["kind"] not in NOT_SERVED]
    assert {doc["kind"] for doc in docs} - {doc["kind"] for doc in served} <= NOT_SERVED
    done = cluster.kubectl(
        "apply", "--dry-run=server", "-o", "name", "-f", "-", input=yaml.safe_dump_all(served)
    )
    assert len(done.stdout.split()) == len(served), done.stdout
