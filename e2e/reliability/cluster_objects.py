"""Reads of one namespace as plain API dicts, for the inventory (inventory.py)."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from .inventory import MANAGED_SELECTOR

MODELDEPLOYMENTS = ("modeldeploy.dev", "v1alpha1")


def modeldeployments(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    found = client.CustomObjectsApi(api).list_namespaced_custom_object(
        *MODELDEPLOYMENTS, namespace, "modeldeployments"
    )
    return list(found.get("items") or [])


def labelled_objects(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """Every object of the kinds the operator ever creates that carries the project's labels:
    its children (Pods, Services, NetworkPolicies) and the gateway's (ConfigMap, Deployment)."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    networking = client.NetworkingV1Api(api)
    lists = {
        "Pod": core.list_namespaced_pod,
        "Service": core.list_namespaced_service,
        "ConfigMap": core.list_namespaced_config_map,
        "Deployment": apps.list_namespaced_deployment,
        "NetworkPolicy": networking.list_namespaced_network_policy,
    }
    found = []
    for kind, list_ in lists.items():
        items = list_(namespace, label_selector=MANAGED_SELECTOR).items
        found += [{**api.sanitize_for_serialization(item), "kind": kind} for item in items]
    return found
