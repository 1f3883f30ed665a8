"""The Ray dashboard's Serve REST API: a small client interface, its HTTP implementation, and a
pure parser of what it reports.

Where the operator runs outside the cluster (development, the e2e tier), the dashboard of each
ModelDeployment's head is reached through `dashboard_url_template` instead of the head Service.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import names

DEFAULT_DASHBOARD_URL = "http://{name}-head.{namespace}.svc:" + str(names.DASHBOARD_PORT)
DEFAULT_METRICS_URL = "http://{name}-head.{namespace}.svc:" + str(names.METRICS_PORT) + "/metrics"
SERVE_APPLICATIONS_PATH = "/api/serve/applications/"
LOGS_PATH = "/api/v0/logs/file"
QUEUE_DEPTH_METRICS = ("ray_modeldeploy_queue_depth", "modeldeploy_queue_depth")
_SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(?P<key>[A-Za-z_][A-Za-z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


class DashboardUnavailable(Exception):
    """The dashboard did not answer, or answered with an error."""


class ServeDashboard(Protocol):
    def get_applications(self) -> dict[str, Any]: ...

    def put_applications(self, config: dict[str, Any]) -> None: ...

    def get_metrics(self) -> str: ...

    def get_log(self, query: dict[str, str]) -> str: ...


@dataclass(frozen=True)
class HttpServeDashboard:
    """The real client: JSON over HTTP with short timeouts, errors as DashboardUnavailable."""

    base_url: str
    metrics_url: str
    timeout_s: float = 10.0

    def _request(
        self,
        method: str,
        body: dict[str, Any] | None = None,
        url: str | None = None,
        timeout_s: float | None = None,
    ) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            url or self.base_url.rstrip("/") + SERVE_APPLICATIONS_PATH,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s or self.timeout_s) as response:
                payload: bytes = response.read()
                return payload
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise DashboardUnavailable(
                f"{method} {self.base_url}: HTTP {exc.code}: {detail}"
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DashboardUnavailable(f"{method} {self.base_url}: {reason}") from None

    def get_applications(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self._request("GET") or b"{}")
        return loaded

    def put_applications(self, config: dict[str, Any]) -> None:
        # The first submission also starts Serve's controller and proxies: give it longer.
        self._request("PUT", config, timeout_s=max(self.timeout_s, 60.0))

    def get_metrics(self) -> str:
        """The head node's Prometheus text (Serve controller metrics, our policy's gauge)."""
        return self._request("GET", url=self.metrics_url).decode(errors="replace")

    def get_log(self, query: dict[str, str]) -> str:
        """A log file's last lines through Ray's log API (`query`: node_id and filename, or
        actor_id and suffix, and lines): the head's dashboard fetches it from the node that
        holds it, so a replica's download and verification can be read from any node."""
        url = f"{self.base_url.rstrip('/')}{LOGS_PATH}?{urllib.parse.urlencode(query)}"
        return self._request("GET", url=url).decode(errors="replace")


def dashboard_url(template: str, name: str, namespace: str) -> str:
    return template.format(name=name, namespace=namespace)


def queue_depth_from_metrics(text: str, app_name: str) -> int | None:
    """Requests waiting for app_name, from the queue-depth gauge in Prometheus text.

    None when the gauge is absent (no autoscaling policy running, e.g. a fixed replica count).
    """
    found = False
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] not in QUEUE_DEPTH_METRICS:
            continue
        labels = {m["key"]: m["value"] for m in _LABEL.finditer(match["labels"] or "")}
        if labels.get("application") != app_name:
            continue
        try:
            total += float(match["value"])
        except ValueError:
            continue
        found = True
    return round(total) if found else None


# Replica states in which a replica exists (is or will be an engine).
_LIVE_REPLICA_STATES = {"STARTING", "UPDATING", "RECOVERING", "RUNNING", "PENDING_MIGRATION"}


@dataclass(frozen=True)
class StartingReplica:
    """Where a starting replica's log can be read: Serve's own log file of the replica (where
    Serve puts the replica's output when it takes stderr over), or the actor's worker log."""

    actor_id: str = ""
    node_id: str = ""
    log_file: str = ""
    """Relative to Ray's log folder on that node, e.g. serve/replica_APP_DEPLOYMENT_ID.log."""

    def log_queries(self, lines: int) -> list[dict[str, str]]:
        """Ray log API queries for this replica's output, most likely first."""
        queries = []
        if self.node_id and self.log_file:
            queries.append({"node_id": self.node_id, "filename": self.log_file})
        if self.actor_id:
            queries += [{"actor_id": self.actor_id, "suffix": s} for s in ("err", "out")]
        return [{**q, "lines": str(lines)} for q in queries]


@dataclass(frozen=True)
class ServeObservation:
    """What Serve reports about one application, reduced to what status needs."""

    app_status: str | None = None
    app_message: str = ""
    deployment_status: str | None = None
    deployment_message: str = ""
    replicas: int = 0
    ready_replicas: int = 0
    target_replicas: int | None = None
    busy_node_ips: frozenset[str] = field(default_factory=frozenset)
    queue_depth: int | None = None
    """Requests waiting, from the autoscaling policy's gauge; None when not known."""
    starting_replicas: tuple[StartingReplica, ...] = ()
    """The replicas still starting (downloading, verifying, loading), and where their logs are."""
    replica_progress: str | None = None
    """The last step a starting replica reported in its log (download, verification)."""

    @classmethod
    def from_instance(cls, instance: dict[str, Any], app_name: str) -> ServeObservation:
        app = (instance.get("applications") or {}).get(app_name)
        if not app:
            return cls()
        deployments = app.get("deployments") or {}
        deployment: dict[str, Any] = next(iter(deployments.values()), {})
        replicas = [
            r for r in deployment.get("replicas") or [] if r.get("state") in _LIVE_REPLICA_STATES
        ]
        target = deployment.get("target_num_replicas")
        return cls(
            app_status=app.get("status"),
            app_message=app.get("message") or "",
            deployment_status=deployment.get("status"),
            deployment_message=deployment.get("message") or "",
            replicas=len(replicas),
            ready_replicas=sum(1 for r in replicas if r.get("state") == "RUNNING"),
            starting_replicas=tuple(
                StartingReplica(
                    actor_id=str(r.get("actor_id") or ""),
                    node_id=str(r.get("node_id") or ""),
                    log_file=str(r.get("log_file_path") or "").lstrip("/"),
                )
                for r in replicas
                if r.get("state") == "STARTING" and (r.get("actor_id") or r.get("log_file_path"))
            ),
            target_replicas=target if isinstance(target, int) else None,
            # A stopping replica still drains requests: its node is not idle yet.
            busy_node_ips=frozenset(
                str(r["node_ip"])
                for r in deployment.get("replicas") or []
                if r.get("node_ip") and r.get("state") in _LIVE_REPLICA_STATES | {"STOPPING"}
            ),
        )
