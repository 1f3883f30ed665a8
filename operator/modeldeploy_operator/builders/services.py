"""Pure builders of the head Service and the endpoint Service of a ModelDeployment."""

from __future__ import annotations

from typing import Any

from ..common import names
from ..common.hashing import stamped
from .owner import Owner


def build_head_service(owner: Owner) -> dict[str, Any]:
    """Stable address of the head for workers (GCS) and the operator (dashboard REST API)."""
    ports = [
        ("gcs", names.GCS_PORT),
        ("dashboard", names.DASHBOARD_PORT),
        ("client", names.CLIENT_PORT),
        ("metrics", names.METRICS_PORT),
    ]
    return stamped(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": names.head_service(owner.name),
                "namespace": owner.namespace,
                "labels": names.labels(owner.name, names.HEAD),
                "ownerReferences": [owner.reference()],
            },
            "spec": {
                "type": "ClusterIP",
                "selector": names.selector(owner.name, names.HEAD),
                "ports": [
                    {"name": n, "port": p, "targetPort": p, "protocol": "TCP"} for n, p in ports
                ],
            },
        }
    )


def build_endpoint_service(owner: Owner) -> dict[str, Any]:
    """Service <name>: the OpenAI-compatible endpoint, in front of every Serve proxy."""
    endpoint = owner.spec.endpoint
    labels = {**endpoint.labels, **names.labels(owner.name, "endpoint")}
    metadata: dict[str, Any] = {
        "name": names.endpoint_service(owner.name),
        "namespace": owner.namespace,
        "labels": labels,
        "ownerReferences": [owner.reference()],
    }
    if endpoint.annotations:
        metadata["annotations"] = dict(endpoint.annotations)
    return stamped(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {
                "type": endpoint.service_type,
                "selector": {names.NAME_LABEL: owner.name, names.PROXY_LABEL: "true"},
                "ports": [
                    {
                        "name": "http",
                        "port": endpoint.port,
                        "targetPort": names.SERVE_PORT,
                        "protocol": "TCP",
                        "appProtocol": "http",
                    }
                ],
            },
        }
    )
