"""Fixtures of the install tests: a Helm release of the chart and the operator as its
ServiceAccount.

The operator process runs on this machine (the chart's pods are only pretend-run by kwok), but
with a kubeconfig holding a TokenRequest token of the chart's ServiceAccount: every call it makes
goes through RBAC with exactly the roles the chart grants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cluster.kubeclient import api_client
from cluster.localcluster import LocalCluster, free_port
from kubernetes import client
from lifecycle.conftest import ModelDeployments
from lifecycle.harness import OperatorProcess

from .chart import PEERING_NAME
from .release import (
    helm_install,
    helm_uninstall,
    peering_owner,
    service_account_token,
    write_kubeconfig,
)


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    notes: str

    @property
    def service_account(self) -> str:
        # The chart's full name: "<release>-modeldeploy" unless the release says modeldeploy.
        return self.name if "modeldeploy" in self.name else f"{self.name}-modeldeploy"


@pytest.fixture(scope="module")
def peering_free(cluster: LocalCluster) -> Iterator[None]:
    """The ClusterKopfPeering "modeldeploy" is one per cluster, and a cluster-wide install
    creates it. The lifecycle tests' fixture makes one with kubectl; park it for this module
    and put it back after."""
    owner = peering_owner(cluster)
    if owner not in (None, "other"):
        raise AssertionError(f"the peering belongs to a Helm release left running: {owner}")
    if owner == "other":
        cluster.kubectl("delete", "clusterkopfpeering", PEERING_NAME)
    yield
    if owner == "other" and peering_owner(cluster) is None:
        peering = {
            "apiVersion": "kopf.dev/v1",
            "kind": "ClusterKopfPeering",
            "metadata": {"name": PEERING_NAME},
        }
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(peering))


@pytest.fixture(scope="module")
def release(cluster: LocalCluster, peering_free: None) -> Iterator[Release]:
    """The chart installed with default values (all namespaces), uninstalled after the module."""
    name, namespace = "md-e2e", "md-e2e-system"
    notes = helm_install(cluster, name, namespace)
    yield Release(name, namespace, notes)
    helm_uninstall(cluster, name, namespace)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture(scope="module")
def operator_token(admin: client.ApiClient, release: Release) -> str:
    return service_account_token(admin, release.namespace, release.service_account)


@pytest.fixture(scope="module")
def operator_kubeconfig(
    cluster: LocalCluster, operator_token: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return write_kubeconfig(
        cluster, operator_token, tmp_path_factory.mktemp("operator") / "kubeconfig"
    )


@pytest.fixture
def start_operator(
    operator_kubeconfig: Path, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """The lifecycle tests' `start_operator`, as the chart's ServiceAccount."""
    started: list[OperatorProcess] = []

    def start(flags: Sequence[str] = ()) -> OperatorProcess:
        closed = f"http://127.0.0.1:{free_port()}"  # no Ray here: the dashboard is unreachable
        operator = OperatorProcess(operator_kubeconfig, closed, closed, 8000, tmp_path, flags)
        started.append(operator)
        operator.start()
        return operator

    yield start
    for operator in started:
        operator.stop()


@pytest.fixture
def mds(admin: client.ApiClient, namespace: str) -> ModelDeployments:
    """ModelDeployments are the user's: created as the admin, reconciled by the operator."""
    return ModelDeployments(admin, namespace)


@pytest.fixture
def as_operator(cluster: LocalCluster, operator_token: str) -> Iterator[client.ApiClient]:
    with api_client(cluster, operator_token) as api:
        yield api
