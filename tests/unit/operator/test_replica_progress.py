"""Which log the operator reads a starting replica's progress from (the real path: e2e)."""

from __future__ import annotations

from typing import Any

from modeldeploy_operator.dashboard import DashboardUnavailable, ServeObservation
from modeldeploy_operator.reconcile import PROGRESS_LOG_LINES, replica_progress


class Logs:
    """The dashboard's log API as seen by replica_progress: text per (actor, suffix)."""

    def __init__(self, logs: dict[tuple[str, str], str], down: bool = False) -> None:
        self.logs, self.down, self.asked = logs, down, []

    def get_applications(self) -> dict[str, Any]:
        return {}

    def put_applications(self, config: dict[str, Any]) -> None:
        return None

    def get_metrics(self) -> str:
        return ""

    def get_replica_log(self, actor_id: str, lines: int, suffix: str) -> str:
        self.asked.append((actor_id, lines, suffix))
        if self.down:
            raise DashboardUnavailable("GET logs: connection refused")
        return self.logs.get((actor_id, suffix), "")


def test_the_first_starting_replica_is_asked_err_then_out() -> None:
    logs = Logs({("a1", "out"): "(ServeReplica pid=7) modeldeploy: verifying 6 files\n"})
    serve = ServeObservation(starting_actor_ids=("a1", "a2"))
    assert replica_progress(logs, serve) == "verifying 6 files"
    assert logs.asked == [("a1", PROGRESS_LOG_LINES, "err"), ("a1", PROGRESS_LOG_LINES, "out")]


def test_nothing_is_asked_once_replicas_run() -> None:
    logs = Logs({})
    assert replica_progress(logs, ServeObservation(ready_replicas=1)) is None
    assert logs.asked == []


def test_an_unreachable_log_api_reports_nothing() -> None:
    serve = ServeObservation(starting_actor_ids=("a1",))
    assert replica_progress(Logs({}, down=True), serve) is None
