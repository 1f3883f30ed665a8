"""How a failed Kubernetes call in a reconcile is retried: soon, whether the apiserver answered
with an error or was not there at all (restarted, unreachable)."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from modeldeploy_operator.edge.handlers import API_RETRY_S, build_registry


class FailingReconciler:
    """Stands in for the Reconciler: its Kubernetes calls fail with `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def reconcile(self, body: dict[str, Any], events: object) -> dict[str, Any]:
        raise self.error


def change_handler(error: Exception) -> Any:
    registry = build_registry(FailingReconciler(error), resync_seconds=5)  # type: ignore[arg-type]
    [handler] = {h.fn for h in registry._changing.get_all_handlers()}
    return handler


REFUSED = MaxRetryError(
    pool=None,  # type: ignore[arg-type]
    url="/api/v1/namespaces/ns/pods?labelSelector=modeldeploy.dev/name%3Dllm",
    reason=NewConnectionError(None, "Connection refused"),  # type: ignore[arg-type]
)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ApiException(status=409, reason="Conflict"), "Kubernetes API: 409 Conflict"),
        (REFUSED, "Kubernetes API unreachable: MaxRetryError"),
        (ProtocolError("Connection aborted."), "Kubernetes API unreachable: ProtocolError"),
    ],
)
def test_kubernetes_errors_are_retried_in_seconds(error: Exception, message: str) -> None:
    handler = change_handler(error)
    body = {"metadata": {"uid": "u1", "name": "llm", "namespace": "ns"}}
    with pytest.raises(kopf.TemporaryError) as raised:
        handler(body=body, patch={})
    # kopf's own default for an unexpected error is a retry a minute later.
    assert raised.value.delay == API_RETRY_S
    assert str(raised.value) == message


def test_other_errors_are_left_to_kopf() -> None:
    handler = change_handler(ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        handler(body={"metadata": {"uid": "u1"}}, patch={})
