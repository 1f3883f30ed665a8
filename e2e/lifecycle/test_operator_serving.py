"""The whole path: kubectl-level create -> operator -> Serve app on a real Ray with the real vLLM
CPU engine -> status Ready -> an answer through the official openai client; then spec changes
and deletion.

A local Ray head stands in for the head pod (kwok pods do not run); the operator reaches it
through its documented out-of-cluster setting `--dashboard-url-template`.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
from cluster.localcluster import wait_until

from .conftest import TINY_ENGINE, TINY_RESOURCES, ModelDeployments
from .harness import LocalRayHead, OperatorProcess


def serve_state(ray: LocalRayHead, app: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{ray.dashboard_url}/api/serve/applications/", timeout=10) as r:
        instance = json.load(r)
    application: dict[str, Any] = (instance.get("applications") or {}).get(app) or {}
    return application


def replica_ids(ray: LocalRayHead, app: str) -> set[str]:
    deployments = serve_state(ray, app).get("deployments") or {}
    return {
        r["replica_id"]
        for d in deployments.values()
        for r in d.get("replicas") or []
        if r.get("state") == "RUNNING"
    }


def chat(base_url: str) -> str:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)
    reply = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=8,
        temperature=0,
    )
    return reply.choices[0].message.content or ""


def long_completion(base_url: str) -> bool:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=300)
    reply = client.completions.create(
        model="tiny",
        prompt="count",
        max_tokens=200,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    return reply.usage is not None and reply.usage.completion_tokens == 200


class ClientLoop:
    """Calls the endpoint one request after another in a thread, counting answers and errors."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.answers = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if chat(self.base_url):
                    self.answers += 1
            except openai.OpenAIError as error:
                self.errors.append(f"{type(error).__name__}: {error}")

    def __enter__(self) -> ClientLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


def test_apply_serve_update_delete(
    start_operator: Callable[..., OperatorProcess],
    mds: ModelDeployments,
    local_ray: LocalRayHead,
    tiny_model: Path,
) -> None:
    start_operator(local_ray)
    spec = {
        "model": {"source": f"file://{tiny_model}", "servedModelName": "tiny"},
        "engine": TINY_ENGINE,
        "resources": TINY_RESOURCES,
        "scaling": {
            "minReplicas": 1,
            "maxReplicas": 1,
            "targetQueueDepth": 2,
            "scaleDownDelaySeconds": 5,
            "maxQueuedRequests": 1000,
        },
    }
    mds.create("tiny", spec)

    ready = mds.wait_condition("tiny", "Ready", "True", "Serving", timeout=420)
    assert "1 replica" in ready["message"]
    status = mds.get("tiny")["status"]
    assert status["endpoint"] == f"http://tiny.{mds.namespace}.svc:8000/v1"
    assert status["phase"] in {"Ready", "Progressing"}
    assert (status["readyReplicas"], status["targetReplicas"]) == (1, 1)
    [worker] = mds.pods("tiny", "ray-worker")
    assert worker.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    assert any(e.reason == "ServeConfigSubmitted" for e in mds.events("tiny"))

    base_url = f"http://127.0.0.1:{local_ray.serve_port}/v1"
    assert chat(base_url)

    # A scaling bound and the policy's target change: an update of the running deployment,
    # the replica keeps running.
    before = replica_ids(local_ray, "tiny")
    assert len(before) == 1
    mds.patch_spec("tiny", {"scaling": {"maxReplicas": 2, "targetQueueDepth": 3}})

    def submitted() -> bool:
        deployed = serve_state(local_ray, "tiny").get("deployed_app_config") or {}
        autoscaling = deployed.get("deployments", [{}])[0].get("autoscaling_config", {})
        return (autoscaling.get("max_replicas"), autoscaling.get("target_ongoing_requests")) == (
            2,
            3,
        )

    wait_until(submitted, 60, "maxReplicas=2 and targetQueueDepth=3 submitted to Serve")
    mds.wait_condition("tiny", "Ready", "True", "Serving", timeout=180)
    assert replica_ids(local_ray, "tiny") == before

    # A burst queues requests: the policy raises Serve's target within seconds, and the operator
    # adds a GPU worker pod for the second replica.
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=96) as pool:
        answers = [pool.submit(long_completion, base_url) for _ in range(192)]
        wait_until(
            lambda: (
                mds.get("tiny")["status"]["targetReplicas"] == 2
                and len(mds.pods("tiny", "ray-worker")) == 2
            ),
            120,
            "target 2 replicas and a second worker pod during the burst",
        )
        scaled_after = time.monotonic() - started
        assert all(f.result() for f in answers)
    assert scaled_after < 60, scaled_after
    # Once the queue is gone and the delay has passed, back to one replica and one worker.
    wait_until(
        lambda: (
            mds.get("tiny")["status"]["targetReplicas"] == 1
            and len(mds.pods("tiny", "ray-worker")) == 1
        ),
        120,
        "back to one replica and one worker after the burst",
    )
    wait_until(lambda: len(replica_ids(local_ray, "tiny")) == 1, 120, "one replica running")
    before = replica_ids(local_ray, "tiny")

    # An engine argument changes: the application is rolled onto a new replica, which starts
    # beside the old one (a surge replica, and a worker pod for it), so a client that keeps
    # calling through the roll, the old replica's draining included, sees no error.
    with ClientLoop(base_url) as during_roll:
        mds.patch_spec("tiny", {"engine": {"maxModelLen": 200}})
        wait_until(
            lambda: (
                mds.get("tiny")["status"]["targetReplicas"] == 2
                and len(mds.pods("tiny", "ray-worker")) == 2
            ),
            60,
            "a surge replica and its worker pod for the roll",
        )
        wait_until(
            lambda: (ids := replica_ids(local_ray, "tiny")) and not ids & before,
            420,
            "a new replica with the new engine arguments",
        )
        switched_at = during_roll.answers
        wait_until(lambda: during_roll.answers > switched_at + 3, 60, "answers after the switch")
    assert during_roll.errors == [], during_roll.errors[:3]
    deployed = serve_state(local_ray, "tiny")["deployed_app_config"]
    assert deployed["args"]["engine"]["max_model_len"] == 200
    mds.wait_condition("tiny", "Ready", "True", "Serving", timeout=120)
    assert chat(base_url)
    # The surge is gone once the new version serves: the spec's bounds are Serve's again.
    wait_until(
        lambda: (
            len(replica_ids(local_ray, "tiny")) == 1 and len(mds.pods("tiny", "ray-worker")) == 1
        ),
        120,
        "one replica and one worker after the roll",
    )

    mds.delete("tiny")
    wait_until(lambda: not mds.pods("tiny") and not mds.services("tiny"), 90, "children collected")
