"""The Kubernetes calls the reconciler makes, behind one small class over the official client.

Objects go in and come out as plain dicts in API (camelCase) form, so the pure builders and the
status functions never see client model classes.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]


def _not_found(exc: ApiException) -> bool:
    return bool(exc.status == 404)


class Kube:
    """Namespaced CRUD on the kinds a ModelDeployment owns (Pods, Services) and Secret lookups."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api_client = api_client
        self._core = client.CoreV1Api(api_client)

    def _plain(self, obj: Any) -> Obj:
        plain: Obj = self._api_client.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return plain

    def list_pods(self, namespace: str, label_selector: str) -> list[Obj]:
        pods = self._core.list_namespaced_pod(namespace, label_selector=label_selector)
        return [self._plain(p) for p in pods.items]

    def get_pod(self, namespace: str, name: str) -> Obj | None:
        try:
            return self._plain(self._core.read_namespaced_pod(name, namespace))
        except ApiException as exc:
            if _not_found(exc):
                return None
            raise

    def create_pod(self, body: Obj) -> bool:
        """Create; False when a pod of that name exists already (a reconcile raced us)."""
        try:
            self._core.create_namespaced_pod(body["metadata"]["namespace"], body)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def delete_pod(self, namespace: str, name: str) -> None:
        try:
            self._core.delete_namespaced_pod(name, namespace)
        except ApiException as exc:
            if not _not_found(exc):
                raise

    def get_service(self, namespace: str, name: str) -> Obj | None:
        try:
            return self._plain(self._core.read_namespaced_service(name, namespace))
        except ApiException as exc:
            if _not_found(exc):
                return None
            raise

    def create_service(self, body: Obj) -> bool:
        try:
            self._core.create_namespaced_service(body["metadata"]["namespace"], body)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def replace_service(self, body: Obj, live: Obj) -> None:
        """Replace, keeping what the apiserver allocated (cluster IPs, node ports)."""
        desired = {**body, "metadata": {**body["metadata"]}, "spec": {**body["spec"]}}
        desired["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        for allocated in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if allocated in live.get("spec", {}):
                desired["spec"][allocated] = live["spec"][allocated]
        self._core.replace_namespaced_service(
            body["metadata"]["name"],
            body["metadata"]["namespace"],
            desired,  # type: ignore[arg-type]  # the client accepts plain dicts
        )

    def get_secret_keys(self, namespace: str, name: str) -> set[str] | None:
        """The keys of a Secret (never its values), or None when it does not exist."""
        try:
            secret = self._core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if _not_found(exc):
                return None
            raise
        return set((secret.data or {}).keys()) | set((secret.string_data or {}).keys())
