"""Fixtures of the e2e tier: one real local control plane per test session.

The cluster (e2e/cluster/localcluster.py) runs on free ports in a temp folder and is stopped,
by pid, when the session ends. Its binaries are built from Go modules on first use and cached;
`make test-e2e` builds them beforehand so a cold build is reported by make, not inside pytest.
When the session ends, no value of a Secret the tests created may appear in an operator log, an
Event or a ModelDeployment status (secret_scan.py); each test namespace is read before deletion.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from cluster.kubeclient import api_client
from cluster.localcluster import DEFAULT_NODES, FakeNode, LocalCluster, running, wait_until
from kubernetes import client
from secret_scan import OPERATOR_LOGS, Ledger, collect_namespace


@pytest.fixture(scope="session", autouse=True)
def secret_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """Fails the session when a value of a Secret the tests made appears in an operator log, an
    Event or a ModelDeployment status (secret_scan.py); namespaces add to it before deletion."""
    ledger = Ledger()
    yield ledger
    ledger.logs.update(OPERATOR_LOGS)
    # Every operator the tests start logs under the session's temp folder (lifecycle harness,
    # install tests, peering replicas).
    ledger.logs.update(tmp_path_factory.getbasetemp().rglob("*.log"))
    leaks = ledger.leaks()
    assert not leaks, "secret values leaked:\n" + "\n".join(leaks)


@pytest.fixture(scope="session")
def cluster_nodes() -> tuple[FakeNode, ...]:
    """The session cluster's fake nodes; a nested conftest.py may override this fixture."""
    return DEFAULT_NODES


@pytest.fixture(scope="session")
def cluster(cluster_nodes: tuple[FakeNode, ...]) -> Iterator[LocalCluster]:
    with running(cluster_nodes) as local:
        yield local


@pytest.fixture(scope="session")
def admin(cluster: LocalCluster) -> Iterator[client.ApiClient]:
    with api_client(cluster) as api:
        yield api


def _namespace_name(test_name: str) -> str:
    # A DNS label unique per test, readable in `kubectl get ns` when a run is kept for debugging.
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].rstrip("-")
    return f"{base}-{next(_counter)}"


_counter = iter(range(1, 1_000_000))


@pytest.fixture
def namespace(
    cluster: LocalCluster,
    admin: client.ApiClient,
    request: pytest.FixtureRequest,
    secret_ledger: Ledger,
) -> Iterator[str]:
    """A fresh namespace whose default ServiceAccount exists (pods are refused until it does)."""
    name = _namespace_name(request.node.name.removeprefix("test_"))
    core = client.CoreV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_until(
        lambda: any(
            sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items
        ),
        timeout=60,
        what=f"the default ServiceAccount of namespace {name}",
    )
    yield name
    collect_namespace(secret_ledger, admin, name)
    # The namespace controller (controller-manager) finishes the deletion in the background.
    core.delete_namespace(name)
