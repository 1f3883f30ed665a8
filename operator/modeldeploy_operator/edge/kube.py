"""The Kubernetes calls the reconciler makes, behind one small class over the official client.

Objects go in and come out as plain dicts in API (camelCase) form, so the pure builders and the
status functions never see client model classes. Requests go through the client's `ApiClient`
(its configuration, authentication and connection pool) as plain JSON, not through `CoreV1Api`:
importing that module costs about 80 MB of validators, and building its models from every
response and serialising them back was most of the operator's CPU time with hundreds of
ModelDeployments.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]
POD = "/api/v1/namespaces/{namespace}/pods"
SERVICE = "/api/v1/namespaces/{namespace}/services"
SECRET = "/api/v1/namespaces/{namespace}/secrets"
CONFIGMAP = "/api/v1/namespaces/{namespace}/configmaps"
NETWORKPOLICY = "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"


def _not_found(exc: ApiException) -> bool:
    return bool(exc.status == 404)


class Kube:
    """Namespaced CRUD on the kinds a ModelDeployment owns (Pods, Services) and Secret lookups."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api_client = api_client

    def _call(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        query: list[tuple[str, str]] | None = None,
        body: Obj | None = None,
    ) -> Obj:
        """One request; the response body as a dict; ApiException on a non-2xx status."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = self._api_client.param_serialize(
            method=method,
            resource_path=path,
            path_params=params,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api_client.call_api(*request)
        response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        decoded: Obj = json.loads(response.data or b"{}")
        return decoded

    def get_object(self, path: str, namespace: str, name: str) -> Obj | None:
        """Any namespaced object by collection path (e.g. .../configmaps); None if absent."""
        try:
            return self._call("GET", path + "/{name}", {"namespace": namespace, "name": name})
        except ApiException as exc:
            if _not_found(exc):
                return None
            raise

    def create_object(self, path: str, body: Obj) -> Obj | None:
        """Create; the object as stored, or None when one of that name exists already (a
        reconcile raced us)."""
        try:
            return self._call("POST", path, {"namespace": body["metadata"]["namespace"]}, body=body)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    def _list(self, path: str, namespace: str, label_selector: str) -> list[Obj]:
        found = self._call(
            "GET", path, {"namespace": namespace}, query=[("labelSelector", label_selector)]
        )
        return list(found.get("items") or [])

    def list_objects(self, path: str, namespace: str, label_selector: str) -> list[Obj]:
        """Any namespaced kind by collection path, by label selector."""
        return self._list(path, namespace, label_selector)

    def list_pods(self, namespace: str, label_selector: str) -> list[Obj]:
        return self._list(POD, namespace, label_selector)

    def create_pod(self, body: Obj) -> Obj | None:
        return self.create_object(POD, body)

    def delete_pod(self, namespace: str, name: str) -> None:
        self.delete_object(POD, namespace, name)

    def list_services(self, namespace: str, label_selector: str) -> list[Obj]:
        return self._list(SERVICE, namespace, label_selector)

    def create_service(self, body: Obj) -> Obj | None:
        return self.create_object(SERVICE, body)

    def replace_service(self, body: Obj, live: Obj) -> None:
        """Replace, keeping what the apiserver allocated (cluster IPs, node ports)."""
        desired = {**body, "metadata": {**body["metadata"]}, "spec": {**body["spec"]}}
        desired["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        for allocated in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if allocated in live.get("spec", {}):
                desired["spec"][allocated] = live["spec"][allocated]
        metadata = body["metadata"]
        params = {"namespace": metadata["namespace"], "name": metadata["name"]}
        self._call("PUT", SERVICE + "/{name}", params, body=desired)

    def replace_object(self, path: str, body: Obj, live: Obj) -> None:
        """Replace at the live object's resourceVersion (a Service keeps its allocated IPs)."""
        if path == SERVICE:
            self.replace_service(body, live)
            return
        metadata = {**body["metadata"], "resourceVersion": live["metadata"]["resourceVersion"]}
        params = {"namespace": metadata["namespace"], "name": metadata["name"]}
        self._call("PUT", path + "/{name}", params, body={**body, "metadata": metadata})

    def delete_object(self, path: str, namespace: str, name: str) -> None:
        try:
            self._call("DELETE", path + "/{name}", {"namespace": namespace, "name": name})
        except ApiException as exc:
            if not _not_found(exc):
                raise

    def get_secret_keys(self, namespace: str, name: str) -> set[str] | None:
        """The keys of a Secret (never its values), or None when it does not exist."""
        secret = self.get_object(SECRET, namespace, name)
        if secret is None:
            return None
        return set((secret.get("data") or {}).keys()) | set((secret.get("stringData") or {}).keys())

    def get_configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The data of a ConfigMap (a digest manifest, a config.json), or None when missing."""
        found = self.get_object(CONFIGMAP, namespace, name)
        if found is None:
            return None
        return {str(k): str(v) for k, v in (found.get("data") or {}).items()}
