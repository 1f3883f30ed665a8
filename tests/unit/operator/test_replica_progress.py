"""Which logs the operator reads a starting replica's progress from (the real path: e2e)."""

from __future__ import annotations

from typing import Any

from modeldeploy_operator.decide.serve_status import ServeObservation
from modeldeploy_operator.edge.dashboard import DashboardUnavailable
from modeldeploy_operator.edge.reconcile import PROGRESS_LOG_LINES, replica_progress

INSTANCE = {
    "applications": {
        "llm": {
            "status": "DEPLOYING",
            "deployments": {
                "VLLMServer": {
                    "replicas": [
                        {
                            "state": "STARTING",
                            "actor_id": "a1",
                            "node_id": "n1",
                            "log_file_path": "/serve/replica_llm_VLLMServer_x1.log",
                        },
                        {"state": "RUNNING", "actor_id": "a2", "node_id": "n1"},
                    ]
                }
            },
        }
    }
}


class Logs:
    """Ray's log API as replica_progress sees it: text per query, or unavailable."""

    def __init__(self, logs: dict[str, str], down: bool = False) -> None:
        self.logs, self.down = logs, down
        self.asked: list[dict[str, str]] = []

    def get_applications(self) -> dict[str, Any]:
        return {}

    def put_applications(self, config: dict[str, Any]) -> None:
        return None

    def get_metrics(self) -> str:
        return ""

    def get_log(self, query: dict[str, str]) -> str:
        self.asked.append(query)
        if self.down:
            raise DashboardUnavailable("GET logs: HTTP 500: Agent for node id does not exist")
        return self.logs.get(query.get("filename") or query["suffix"], "")


def test_serves_replica_log_first_then_the_actor_output() -> None:
    serve = ServeObservation.from_instance(INSTANCE, "llm")
    line = "INFO 2026-11-25 22:53:26,958 llm_VLLMServer x1 -- modeldeploy: verifying 6 files"
    logs = Logs({"serve/replica_llm_VLLMServer_x1.log": line})
    assert replica_progress(logs, serve) == "verifying 6 files"
    assert logs.asked == [
        {"node_id": "n1", "filename": "serve/replica_llm_VLLMServer_x1.log", "lines": "500"}
    ]
    # Serve not holding the output: the actor's own stderr, then stdout.
    logs = Logs({"out": "(ServeReplica pid=7) modeldeploy: verified 6 files"})
    assert replica_progress(logs, serve) == "verified 6 files"
    assert [q.get("suffix") for q in logs.asked] == [None, "err", "out"]
    assert all(q["lines"] == str(PROGRESS_LOG_LINES) for q in logs.asked)


def test_nothing_is_asked_once_replicas_run() -> None:
    logs = Logs({})
    assert replica_progress(logs, ServeObservation(ready_replicas=1)) is None
    assert logs.asked == []


def test_an_unreachable_log_api_reports_nothing() -> None:
    serve = ServeObservation.from_instance(INSTANCE, "llm")
    assert replica_progress(Logs({}, down=True), serve) is None
