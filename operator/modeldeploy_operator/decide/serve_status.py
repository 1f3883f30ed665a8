"""What Ray Serve reports about one application, read into what the operator decides on (pure).

`edge/dashboard.py` fetches (the REST API's JSON, the head's Prometheus text); this module reads:
the application and deployment states, the replicas (live, starting, and where their logs are),
Serve's target, and the queue-depth gauge of our autoscaling policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modeldeploy_serving.prometheus_text import matching

QUEUE_DEPTH_METRICS = ("ray_modeldeploy_queue_depth", "modeldeploy_queue_depth")


def queue_depth_from_metrics(text: str, app_name: str) -> int | None:
    """Requests waiting for app_name, from the queue-depth gauge in Prometheus text.

    None when the gauge is absent (no autoscaling policy running, e.g. a fixed replica count).
    """
    samples = list(matching(text, QUEUE_DEPTH_METRICS, application=app_name))
    return round(sum(s.value for s in samples)) if samples else None


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
