"""Where Kubernetes events about a ModelDeployment go: the one interface the reconcile and the
gateway's sync write to (handlers.py adapts kopf's event functions to it)."""

from __future__ import annotations

from typing import Protocol


class EventSink(Protocol):
    def normal(self, reason: str, message: str) -> None: ...

    def warning(self, reason: str, message: str) -> None: ...
