"""Status of a ModelDeployment, computed purely from what the operator observed.

The reasons name a cause a user can act on: InvalidSpec (fix the spec), InsufficientGPU (add
nodes or lower the request, with the scheduler's own message), ModelLoadFailed and
EngineOutOfMemory (from the engine's failure), ServeDeployFailed (Serve's message),
WaitingForHead and DashboardUnreachable (the Ray head), FitCheckFailed (the model does not fit
its GPUs: nothing is created) and ModelVerificationFailed (a replica refused weights whose digests
differ). FitCheck and ModelVerified are conditions of their own (model_checks.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .model_checks import Check, Pinned, extra_checks, model_status, serve_refusal
from .serve_status import ServeObservation
from .traffic import TrafficCounts, traffic_status
from .workers import WorkerPod

_OOM = re.compile(
    r"out of memory|OutOfMemoryError|No available memory for the cache blocks|"
    r"larger than the available KV cache memory|KV cache is needed",
    re.IGNORECASE,
)
_LOAD = re.compile(
    r"Repository Not Found|does not appear to have (a )?file|No such file or directory|"
    r"is not a (local folder|valid model)|Can't load|gated repo|401 Client Error|"
    r"safetensors|config\.json|Unrecognized model|OSError",
    re.IGNORECASE,
)

MAX_MESSAGE = 1024


@dataclass(frozen=True)
class Observation:
    """Everything status depends on, gathered by the reconciler."""

    generation: int
    endpoint: str
    selector: str
    invalid_spec: str | None = None
    head_ready: bool = False
    unschedulable: str | None = None
    """The scheduler's message for a pod of this deployment that cannot be placed."""
    workers: Sequence[WorkerPod] = ()
    desired_workers: int = 0
    target_replicas: int = 0
    dashboard_error: str | None = None
    serve: ServeObservation = field(default_factory=ServeObservation)
    fit: Check | None = None
    """The preflight fit check; None when the spec was not valid enough to run it."""
    fit_blocks: bool = False
    """The fit check failed and the spec enforces it: nothing was created or submitted."""
    pinned: Pinned | None = None
    """The revision and digests the spec pins, if any."""
    traffic: TrafficCounts | None = None
    """The gateway's request counts for this model; None when it uses no gateway or the
    gateway did not answer (the status then keeps its last counts)."""


def failure_reason(message: str) -> str:
    """Name the cause of a Serve deployment failure from the engine's own words."""
    if serve_refusal(ServeObservation(deployment_message=message)):
        return "ModelVerificationFailed"
    if _OOM.search(message):
        return "EngineOutOfMemory"
    if _LOAD.search(message):
        return "ModelLoadFailed"
    return "ServeDeployFailed"


def _short(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def _verdicts(obs: Observation) -> tuple[Check, Check, Check]:
    """(Ready, Progressing, Degraded) for one observation."""
    ok = Check("False", "AsExpected", "")
    if obs.invalid_spec is not None:
        bad = Check("False", "InvalidSpec", obs.invalid_spec)
        return bad, ok, Check("True", "InvalidSpec", obs.invalid_spec)
    if obs.fit_blocks and obs.fit is not None:
        blocked = Check("False", "FitCheckFailed", obs.fit.message)
        return blocked, blocked, Check("True", "FitCheckFailed", obs.fit.message)

    serve = obs.serve
    serving = serve.app_status == "RUNNING" and (
        serve.ready_replicas > 0 or obs.target_replicas == 0
    )
    degraded = ok
    if obs.unschedulable is not None:
        reason = "InsufficientGPU" if "nvidia.com/gpu" in obs.unschedulable else "Unschedulable"
        degraded = Check("True", reason, obs.unschedulable)
    elif obs.dashboard_error is not None and obs.head_ready:
        degraded = Check("True", "DashboardUnreachable", obs.dashboard_error)
    elif serve.app_status in {"DEPLOY_FAILED", "UNHEALTHY"} or serve.deployment_status in {
        "DEPLOY_FAILED",
        "UNHEALTHY",
    }:
        message = serve.deployment_message or serve.app_message
        refused = serve_refusal(serve)
        if refused:
            # The refusal itself, not Serve's traceback around it (which the length cap cuts).
            message = "; ".join(m.describe() for m in refused)
        degraded = Check("True", failure_reason(message), message)

    if serving:
        if serve.ready_replicas == 0:
            ready = Check("True", "ScaledToZero", "no replica runs; the first request starts one")
        else:
            ready = Check("True", "Serving", f"{serve.ready_replicas} replica(s) serving")
    elif degraded.status == "True":
        ready = Check("False", degraded.reason, degraded.message)
    elif not obs.head_ready:
        ready = Check("False", "WaitingForHead", "the Ray head pod is not ready yet")
    elif serve.app_status is None:
        ready = Check("False", "Deploying", "submitting the Serve application")
    else:
        ready = Check("False", "Deploying", serve.app_message or "replicas are starting")

    ready_workers = sum(1 for w in obs.workers if w.ready)
    settled = (
        serving
        and serve.ready_replicas >= obs.target_replicas
        and ready_workers >= obs.desired_workers
        and len(obs.workers) == obs.desired_workers
    )
    if settled:
        progressing = Check("False", "Settled", "")
    elif degraded.status == "True" and not serving:
        progressing = Check("False", degraded.reason, degraded.message)
    else:
        progressing = Check(
            "True",
            "Reconciling",
            f"replicas {serve.ready_replicas}/{obs.target_replicas}, "
            f"workers {ready_workers}/{obs.desired_workers}",
        )
    return ready, progressing, degraded


def _phase(ready: Check, degraded: Check, progressing: Check) -> str:
    if ready.reason in {"InvalidSpec", "FitCheckFailed"}:
        return "Failed"
    if ready.status == "True":
        return "Degraded" if degraded.status == "True" else "Ready"
    if degraded.status == "True":
        return "Degraded"
    return "Progressing" if progressing.status == "True" else "Pending"


def build_conditions(
    obs: Observation, previous: Sequence[dict[str, Any]], now: str
) -> list[dict[str, Any]]:
    """Conditions for obs; lastTransitionTime moves only when a condition's status changes."""
    before = {c.get("type"): c for c in previous}
    conditions = []
    checks: list[tuple[str, Check | Check]] = list(
        zip(("Ready", "Progressing", "Degraded"), _verdicts(obs), strict=True)
    )
    checks += extra_checks(obs.fit, obs.pinned, obs.serve)
    for kind, verdict in checks:
        old = before.get(kind) or {}
        changed = old.get("status") != verdict.status or "lastTransitionTime" not in old
        conditions.append(
            {
                "type": kind,
                "status": verdict.status,
                "reason": verdict.reason,
                "message": _short(verdict.message),
                "lastTransitionTime": now if changed else old["lastTransitionTime"],
                "observedGeneration": obs.generation,
            }
        )
    return conditions


def build_status(obs: Observation, previous: dict[str, Any], now: str) -> dict[str, Any]:
    """The complete status subresource for obs."""
    conditions = build_conditions(obs, previous.get("conditions") or [], now)
    ready, progressing, degraded = (
        Check(c["status"], c["reason"], c["message"]) for c in conditions[:3]
    )
    serve = obs.serve
    traffic = traffic_status(obs.traffic) if obs.traffic is not None else previous.get("traffic")
    model = model_status(obs.pinned, serve)
    return {
        **({"traffic": traffic} if traffic else {}),
        **({"model": model} if model else {}),
        "phase": _phase(ready, degraded, progressing),
        "conditions": conditions,
        "observedGeneration": obs.generation,
        "replicas": serve.replicas,
        "readyReplicas": serve.ready_replicas,
        "targetReplicas": obs.target_replicas,
        "queueDepth": serve.queue_depth
        if serve.queue_depth is not None
        else previous.get("queueDepth", 0),
        "workers": {
            "desired": obs.desired_workers,
            "ready": sum(1 for w in obs.workers if w.ready),
            "pending": sum(1 for w in obs.workers if not w.ready),
        },
        "endpoint": obs.endpoint,
        "selector": obs.selector,
    }


def condition_changes(
    previous: Sequence[dict[str, Any]], current: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Conditions whose status or reason changed: each becomes a Kubernetes event."""
    before = {c.get("type"): (c.get("status"), c.get("reason")) for c in previous}
    return [c for c in current if before.get(c["type"]) != (c["status"], c["reason"])]
