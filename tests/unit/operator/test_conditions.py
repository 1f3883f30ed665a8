"""Status and conditions computed from observations."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy_operator.decide.conditions import (
    Observation,
    build_status,
    condition_changes,
    failure_reason,
)
from modeldeploy_operator.decide.serve_status import ServeObservation
from modeldeploy_operator.decide.workers import WorkerPod

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:05:00Z"


def worker(index: int, ready: bool) -> WorkerPod:
    return WorkerPod(name=f"w-{index}", index=index, spec_hash="h", ready=ready, scheduled=ready)


def obs(**changes: Any) -> Observation:
    base: dict[str, Any] = {
        "generation": 3,
        "endpoint": "http://llm.team.svc:8000/v1",
        "selector": "modeldeploy.dev/name=llm",
        "head_ready": True,
        "workers": [worker(0, True)],
        "desired_workers": 1,
        "target_replicas": 1,
        "serve": ServeObservation(
            app_status="RUNNING",
            deployment_status="HEALTHY",
            replicas=1,
            ready_replicas=1,
            target_replicas=1,
        ),
    }
    return Observation(**{**base, **changes})


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_serving_is_ready_and_settled() -> None:
    status = build_status(obs(), {}, NOW)
    assert conditions(status) == {
        "Ready": ("True", "Serving"),
        "Progressing": ("False", "Settled"),
        "Degraded": ("False", "AsExpected"),
    }
    assert status["phase"] == "Ready"
    assert status["endpoint"] == "http://llm.team.svc:8000/v1"
    assert (status["replicas"], status["readyReplicas"], status["targetReplicas"]) == (1, 1, 1)
    assert status["workers"] == {"desired": 1, "ready": 1, "pending": 0}
    assert status["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])


def test_invalid_spec() -> None:
    status = build_status(
        obs(invalid_spec="spec.model.tokenSecretRef: Secret 'x' does not exist"), {}, NOW
    )
    assert conditions(status)["Ready"] == ("False", "InvalidSpec")
    assert conditions(status)["Degraded"] == ("True", "InvalidSpec")
    assert status["phase"] == "Failed"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert "does not exist" in ready["message"]


def test_waiting_for_head() -> None:
    status = build_status(obs(head_ready=False, serve=ServeObservation()), {}, NOW)
    assert conditions(status)["Ready"] == ("False", "WaitingForHead")
    assert conditions(status)["Progressing"][0] == "True"
    assert status["phase"] == "Progressing"


def test_insufficient_gpu_carries_scheduler_message() -> None:
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    status = build_status(
        obs(
            unschedulable=message,
            serve=ServeObservation(app_status="DEPLOYING"),
            workers=[worker(0, False)],
        ),
        {},
        NOW,
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "InsufficientGPU",
        message,
    )
    assert conditions(status)["Degraded"] == ("True", "InsufficientGPU")


def test_unschedulable_for_other_reasons() -> None:
    status = build_status(
        obs(unschedulable="0/3 nodes are available: 3 Insufficient memory."), {}, NOW
    )
    assert conditions(status)["Degraded"] == ("True", "Unschedulable")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("OSError: /models/x does not appear to have a file named config.json", "ModelLoadFailed"),
        ("Repository Not Found for url: https://huggingface.co/api/models/x", "ModelLoadFailed"),
        (
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB",
            "EngineOutOfMemory",
        ),
        ("No available memory for the cache blocks", "EngineOutOfMemory"),
        ("ImportError: cannot import name 'x'", "ServeDeployFailed"),
    ],
)
def test_failure_reasons(message: str, reason: str) -> None:
    assert failure_reason(message) == reason
    serve = ServeObservation(
        app_status="DEPLOY_FAILED", deployment_status="DEPLOY_FAILED", deployment_message=message
    )
    status = build_status(obs(serve=serve), {}, NOW)
    assert conditions(status)["Ready"] == ("False", reason)
    assert conditions(status)["Progressing"] == ("False", reason)


def test_dashboard_unreachable_is_degraded() -> None:
    status = build_status(
        obs(dashboard_error="connection refused", serve=ServeObservation()), {}, NOW
    )
    assert conditions(status)["Degraded"] == ("True", "DashboardUnreachable")
    assert conditions(status)["Ready"] == ("False", "DashboardUnreachable")


def test_scaled_to_zero_is_ready() -> None:
    serve = ServeObservation(app_status="RUNNING", replicas=0, ready_replicas=0, target_replicas=0)
    status = build_status(
        obs(serve=serve, target_replicas=0, desired_workers=0, workers=[]), {}, NOW
    )
    assert conditions(status)["Ready"] == ("True", "ScaledToZero")


def test_progressing_while_replicas_start() -> None:
    serve = ServeObservation(app_status="RUNNING", replicas=2, ready_replicas=1, target_replicas=2)
    status = build_status(
        obs(
            serve=serve,
            target_replicas=2,
            desired_workers=2,
            workers=[worker(0, True), worker(1, False)],
        ),
        {},
        NOW,
    )
    assert conditions(status)["Ready"] == ("True", "Serving")
    assert conditions(status)["Progressing"][0] == "True"
    assert status["workers"] == {"desired": 2, "ready": 1, "pending": 1}


def test_transition_time_moves_only_on_status_change() -> None:
    first = build_status(obs(head_ready=False, serve=ServeObservation()), {}, NOW)
    same = build_status(obs(head_ready=False, serve=ServeObservation()), first, LATER)
    assert [c["lastTransitionTime"] for c in same["conditions"]] == [NOW, NOW, NOW]
    ready = build_status(obs(), first, LATER)
    times = {c["type"]: c["lastTransitionTime"] for c in ready["conditions"]}
    assert times == {"Ready": LATER, "Progressing": LATER, "Degraded": NOW}


def test_condition_changes_feed_events() -> None:
    first = build_status(obs(head_ready=False, serve=ServeObservation()), {}, NOW)
    assert {c["type"] for c in condition_changes([], first["conditions"])} == {
        "Ready",
        "Progressing",
        "Degraded",
    }
    assert condition_changes(first["conditions"], first["conditions"]) == []
    ready = build_status(obs(), first, LATER)
    assert {c["type"] for c in condition_changes(first["conditions"], ready["conditions"])} == {
        "Ready",
        "Progressing",
    }


def test_long_messages_are_truncated() -> None:
    serve = ServeObservation(app_status="DEPLOY_FAILED", deployment_message="x" * 5000)
    status = build_status(obs(serve=serve), {}, NOW)
    assert all(len(c["message"]) <= 1024 for c in status["conditions"])
