"""Names, labels and ports of the objects a ModelDeployment owns.

Every child carries the recommended `app.kubernetes.io/*` labels plus `modeldeploy.dev/name`, so
`kubectl get pods -l modeldeploy.dev/name=NAME` finds everything of one deployment.
"""

from __future__ import annotations

from typing import Any, Final

NAME_LABEL: Final = "modeldeploy.dev/name"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
PROXY_LABEL: Final = "modeldeploy.dev/serve-proxy"
SPEC_HASH_ANNOTATION: Final = "modeldeploy.dev/spec-hash"
WORKER_INDEX_ANNOTATION: Final = "modeldeploy.dev/worker-index"

HEAD: Final = "ray-head"
WORKER: Final = "ray-worker"

GCS_PORT: Final = 6379
DASHBOARD_PORT: Final = 8265
CLIENT_PORT: Final = 10001
SERVE_PORT: Final = 8000
METRICS_PORT: Final = 8080

# Where the operator reaches each head's dashboard and metrics: the head Service in the cluster;
# out of cluster (development, the e2e tier) `--dashboard-url-template` names another place.
DEFAULT_DASHBOARD_URL: Final = "http://{name}-head.{namespace}.svc:" + str(DASHBOARD_PORT)
DEFAULT_METRICS_URL: Final = "http://{name}-head.{namespace}.svc:" + str(METRICS_PORT) + "/metrics"


def dashboard_url(template: str, name: str, namespace: str) -> str:
    return template.format(name=name, namespace=namespace)


def head_pod(name: str) -> str:
    return f"{name}-head"


def head_service(name: str) -> str:
    return f"{name}-head"


def endpoint_service(name: str) -> str:
    return name


def worker_pod(name: str, index: int) -> str:
    return f"{name}-worker-{index}"


def labels(name: str, component: str | None = None) -> dict[str, str]:
    """Recommended labels of every child; `component` narrows to the head or the workers."""
    result = {
        "app.kubernetes.io/name": "modeldeploy",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": "modeldeploy",
        "app.kubernetes.io/part-of": "modeldeploy",
        NAME_LABEL: name,
    }
    if component:
        result[COMPONENT_LABEL] = component
    return result


def selector(name: str, component: str) -> dict[str, str]:
    """The smallest label set that picks one deployment's head or workers."""
    return {NAME_LABEL: name, COMPONENT_LABEL: component}


def selector_string(name: str, component: str) -> str:
    return ",".join(f"{k}={v}" for k, v in selector(name, component).items())


def owned_selector(name: str) -> str:
    """Label selector of every child of one deployment: one list call finds them all."""
    return f"{NAME_LABEL}={name}"


def is_worker(obj: dict[str, Any]) -> bool:
    return bool((obj["metadata"].get("labels") or {}).get(COMPONENT_LABEL) == WORKER)


def endpoint_url(name: str, namespace: str, port: int) -> str:
    return f"http://{endpoint_service(name)}.{namespace}.svc:{port}/v1"


def head_address(name: str, namespace: str) -> str:
    """DNS name of the head Service inside the cluster."""
    return f"{head_service(name)}.{namespace}.svc"


def head_network_policy(name: str) -> str:
    return f"{name}-head"


def endpoint_network_policy(name: str) -> str:
    return f"{name}-endpoint"
