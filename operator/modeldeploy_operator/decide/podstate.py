"""Reading a live pod's state (pure): ready, scheduled, the scheduler's complaint."""

from __future__ import annotations

from typing import Any

from ..common.hashing import hash_of
from ..common.names import WORKER_INDEX_ANNOTATION
from .workers import WorkerPod


def _condition(pod: dict[str, Any], kind: str) -> dict[str, Any]:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def is_ready(pod: dict[str, Any]) -> bool:
    return _condition(pod, "Ready").get("status") == "True" and not is_terminating(pod)


def is_scheduled(pod: dict[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def is_terminating(pod: dict[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def unschedulable_message(pod: dict[str, Any]) -> str | None:
    """The scheduler's message, e.g. '0/3 nodes are available: 3 Insufficient nvidia.com/gpu.'"""
    scheduled = _condition(pod, "PodScheduled")
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return str(scheduled.get("message") or "Unschedulable")
    return None


def worker_from_pod(pod: dict[str, Any]) -> WorkerPod:
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    name = str(metadata.get("name", ""))
    index_text = annotations.get(WORKER_INDEX_ANNOTATION) or name.rsplit("-", 1)[-1]
    return WorkerPod(
        name=name,
        index=int(index_text) if str(index_text).isdigit() else -1,
        spec_hash=hash_of(pod),
        ready=is_ready(pod),
        scheduled=is_scheduled(pod),
        pod_ip=(pod.get("status") or {}).get("podIP"),
        terminating=is_terminating(pod),
    )
