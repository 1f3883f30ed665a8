"""Fixtures of the operator e2e tests: CRDs installed, the operator process, a local Ray head."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cluster.crds import install_crds
from cluster.localcluster import LocalCluster, free_port, wait_until
from kubernetes import client

from .harness import LocalRayHead, OperatorProcess

# The tiny model on the CPU engine, sized for this machine, placed like a GPU replica.
TINY_ENGINE = {
    "dtype": "float32",
    "maxModelLen": 256,
    "maxNumSeqs": 8,
    "gpuMemoryUtilization": 0.1,
    "extraArgs": ["--enforce-eager"],
}
TINY_RESOURCES = {"gpuProduct": "NVIDIA-H100-80GB-HBM3", "cpu": "2", "memory": "8Gi"}


@pytest.fixture(scope="session")
def crds(cluster: LocalCluster) -> None:
    install_crds(cluster)


@pytest.fixture
def start_operator(
    cluster: LocalCluster, crds: None, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """Starts `modeldeploy operator` against the cluster; every one started is stopped after."""
    started: list[OperatorProcess] = []

    def start(ray: LocalRayHead | None = None, flags: Sequence[str] = ()) -> OperatorProcess:
        # Without a Ray head, point at a closed port: the dashboard is unreachable.
        closed = f"http://127.0.0.1:{free_port()}"
        operator = OperatorProcess(
            cluster.kubeconfig,
            dashboard_template=ray.dashboard_url if ray else closed,
            metrics_template=ray.metrics_url if ray else closed,
            serve_port=ray.serve_port if ray else 8000,
            log_dir=tmp_path,
            flags=flags,
        )
        started.append(operator)
        operator.start()
        return operator

    yield start
    for operator in started:
        operator.stop()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[LocalRayHead]:
    head = LocalRayHead()
    try:
        head.start_confirmed()
        yield head
    finally:
        head.close()


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    from modeldeploy_serving.tiny_model import make_tiny_model

    return make_tiny_model(Path("/tmp/modeldeploy/models/tiny-llama"))


class ModelDeployments:
    """CRUD on ModelDeployments of one namespace through the real apiserver."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def _args(self) -> tuple[str, str, str, str]:
        return ("modeldeploy.dev", "v1alpha1", self.namespace, "modeldeployments")

    def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": "modeldeploy.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": spec,
        }
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(*self._args(), body)
        return created

    def get(self, name: str) -> dict[str, Any]:
        got: dict[str, Any] = self.custom.get_namespaced_custom_object(*self._args(), name)
        return got

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(*self._args(), name, {"spec": spec})

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(*self._args(), name)

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        for condition in (self.get(name).get("status") or {}).get("conditions") or []:
            if condition["type"] == kind:
                return dict(condition)
        return {}

    def wait_condition(
        self, name: str, kind: str, status: str, reason: str | None = None, timeout: float = 120
    ) -> dict[str, Any]:
        def matches() -> dict[str, Any] | None:
            condition = self.condition(name, kind)
            if condition.get("status") == status and reason in (None, condition.get("reason")):
                return condition
            return None

        found: dict[str, Any] = wait_until(
            matches, timeout, f"{kind}={status} ({reason or 'any reason'}) on {name}", interval=0.5
        )
        return found

    def pods(self, name: str, component: str | None = None) -> list[client.V1Pod]:
        selector = f"modeldeploy.dev/name={name}"
        if component:
            selector += f",app.kubernetes.io/component={component}"
        return list(self.core.list_namespaced_pod(self.namespace, label_selector=selector).items)

    def services(self, name: str) -> list[client.V1Service]:
        selector = f"modeldeploy.dev/name={name}"
        return list(
            self.core.list_namespaced_service(self.namespace, label_selector=selector).items
        )

    def events(self, name: str) -> list[client.CoreV1Event]:
        events = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        )
        return list(events.items)


@pytest.fixture
def mds(admin: client.ApiClient, namespace: str) -> ModelDeployments:
    return ModelDeployments(admin, namespace)
