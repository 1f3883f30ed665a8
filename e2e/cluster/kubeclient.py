"""Kubernetes Python clients for a LocalCluster (the one part of the package needing the venv)."""

from __future__ import annotations

from kubernetes import client

from .localcluster import LocalCluster


def api_client(cluster: LocalCluster, token: str | None = None) -> client.ApiClient:
    """A client for the cluster, as the admin or as the holder of `token` (a ServiceAccount)."""
    config = client.Configuration()
    config.host = cluster.server
    config.ssl_ca_cert = str(cluster.ca_file)
    config.api_key = {"authorization": f"Bearer {token or cluster.token}"}
    return client.ApiClient(config)
