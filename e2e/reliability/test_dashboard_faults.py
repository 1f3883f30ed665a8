"""Faults between the operator and a Ray head, with a real local Ray (and, where a replica must
answer, the real vLLM CPU engine) standing in for the head pod.

- The dashboard becomes unreachable: a TCP relay the test controls sits between the operator and
  the dashboard, and is stopped (connections refused, open ones cut). The status says
  Degraded=DashboardUnreachable and names the address; once the relay runs again the status
  comes back by itself, and the still-deployed application is not submitted again.
- The head is lost: its pod is deleted and the Ray cluster behind it restarted (its Serve
  application gone with it). The operator recreates the pod, submits the application again, and
  the endpoint answers the official openai client once more.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
from cluster.localcluster import wait_until
from lifecycle.conftest import TINY_ENGINE, TINY_RESOURCES, ModelDeployments
from lifecycle.harness import LocalRayHead, OperatorProcess, TcpRelay


def tiny_spec(model: Path, min_replicas: int) -> dict[str, Any]:
    return {
        "model": {"source": f"file://{model}", "servedModelName": "tiny"},
        "engine": TINY_ENGINE,
        "resources": TINY_RESOURCES,
        "scaling": {"minReplicas": min_replicas, "maxReplicas": 1, "maxQueuedRequests": 1000},
    }


def serve_applications(ray: LocalRayHead) -> dict[str, Any]:
    with urllib.request.urlopen(f"{ray.dashboard_url}/api/serve/applications/", timeout=10) as r:
        found: dict[str, Any] = json.load(r).get("applications") or {}
    return found


def chat(base_url: str) -> str:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)
    reply = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=8,
        temperature=0,
    )
    return reply.choices[0].message.content or ""


def submissions(mds: ModelDeployments, name: str) -> int:
    return sum(1 for e in mds.events(name) if e.reason == "ServeConfigSubmitted")


def head_creations(mds: ModelDeployments, name: str) -> int:
    return sum(1 for e in mds.events(name) if e.reason == "Created" and "head pod" in e.message)


class ReadyHistory:
    """Records every (status, reason) the Ready condition of one ModelDeployment passes
    through, polled in a thread, so a short not-Ready spell is not missed between two waits."""

    def __init__(self, mds: ModelDeployments, name: str) -> None:
        self.mds, self.name = mds, name
        self.seen: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            condition = self.mds.condition(self.name, "Ready")
            state = (str(condition.get("status")), str(condition.get("reason")))
            if not self.seen or self.seen[-1] != state:
                self.seen.append(state)

    def not_ready_seen(self) -> bool:
        return any(status != "True" for status, _ in self.seen)

    def __enter__(self) -> ReadyHistory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_dashboard_unreachable_degrades_and_recovers(
    operator_at: Callable[..., OperatorProcess],
    mds: ModelDeployments,
    ray_head: LocalRayHead,
    tiny_model: Path,
) -> None:
    relay = TcpRelay(ray_head.dashboard_port)
    relay.start()
    try:
        operator_at(
            dashboard_url=relay.url,
            metrics_url=ray_head.metrics_url,
            serve_port=ray_head.serve_port,
        )
        # At zero replicas Serve runs the application without an engine: Ready (ScaledToZero)
        # within seconds, which is all this test needs of Serve.
        mds.create("relayed", tiny_spec(tiny_model, min_replicas=0))
        mds.wait_condition("relayed", "Ready", "True", "ScaledToZero", timeout=300)
        assert "relayed" in serve_applications(ray_head)
        generation = mds.get("relayed")["metadata"]["generation"]
        submitted = submissions(mds, "relayed")
        assert submitted >= 1

        cut = time.monotonic()
        relay.stop()
        degraded = mds.wait_condition("relayed", "Degraded", "True", "DashboardUnreachable")
        degraded_s = time.monotonic() - cut
        assert f"127.0.0.1:{relay.port}" in degraded["message"], degraded
        ready = mds.condition("relayed", "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "DashboardUnreachable"), ready
        assert mds.get("relayed")["status"]["phase"] == "Degraded"
        assert any(
            e.reason == "DashboardUnreachable" and e.type == "Warning"
            for e in mds.events("relayed")
        )

        # Back without anything done by the test: the periodic reconcile finds the dashboard.
        restored = time.monotonic()
        relay.start()
        mds.wait_condition("relayed", "Ready", "True", "ScaledToZero", timeout=120)
        recovered_s = time.monotonic() - restored
        degraded = mds.wait_condition("relayed", "Degraded", "False", timeout=60)
        assert degraded["reason"] == "AsExpected"
        assert mds.get("relayed")["metadata"]["generation"] == generation
        # The application never left Serve: an outage of the dashboard is no reason to submit.
        assert submissions(mds, "relayed") == submitted
        print(
            f"dashboard relay cut: Degraded after {degraded_s:.1f} s; "
            f"Ready again {recovered_s:.1f} s after the relay came back"
        )
    finally:
        relay.stop()


def test_head_loss_resubmits_application(
    operator_at: Callable[..., OperatorProcess],
    mds: ModelDeployments,
    ray_head: LocalRayHead,
    tiny_model: Path,
) -> None:
    operator_at(
        dashboard_url=ray_head.dashboard_url,
        metrics_url=ray_head.metrics_url,
        serve_port=ray_head.serve_port,
    )
    mds.create("phoenix", tiny_spec(tiny_model, min_replicas=1))
    mds.wait_condition("phoenix", "Ready", "True", "Serving", timeout=420)
    base_url = f"http://127.0.0.1:{ray_head.serve_port}/v1"
    assert chat(base_url)
    submitted, heads_created = submissions(mds, "phoenix"), head_creations(mds, "phoenix")
    [head] = mds.pods("phoenix", "ray-head")

    lost = time.monotonic()
    with ReadyHistory(mds, "phoenix") as history:
        # The head pod goes, and with it its Ray cluster: GCS state and the Serve application.
        mds.core.delete_namespaced_pod(head.metadata.name, mds.namespace, grace_period_seconds=0)
        restarted_at = time.time()
        ray_head.restart()
        wait_until(
            lambda: (
                [p.metadata.uid for p in mds.pods("phoenix", "ray-head")]
                not in ([], [head.metadata.uid])
            ),
            120,
            "a new head pod",
        )
        wait_until(history.not_ready_seen, 120, "Ready to go False after the head's loss")
        mds.wait_condition("phoenix", "Ready", "True", "Serving", timeout=420)
    back_s = time.monotonic() - lost
    assert history.seen[0] == ("True", "Serving"), history.seen
    assert history.not_ready_seen(), history.seen

    # Deployed again by the operator into the new Ray cluster, which began without it.
    application = serve_applications(ray_head)["phoenix"]
    assert application["status"] == "RUNNING"
    assert application["last_deployed_time_s"] > restarted_at
    assert submissions(mds, "phoenix") > submitted
    assert head_creations(mds, "phoenix") == heads_created + 1
    assert chat(base_url)
    print(f"head loss: Ready again after {back_s:.0f} s, through {history.seen}")
