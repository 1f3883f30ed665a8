"""Scale to zero and back on the real CPU engine: a request that arrives while no replica runs is
held through the cold start and answered; more waiting requests than `max_queued_requests` get
429 with Retry-After, never a hang or a 5xx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from modeldeploy_serving.autoscaling import AutoscalingConfig
from modeldeploy_serving.config import EngineConfig, ServingConfig
from modeldeploy_serving.ingress import DEFAULT_INGRESS
from modeldeploy_serving.procs import ServerProcess, modeldeploy_server
from modeldeploy_serving.tiny_model import make_tiny_model

IDLE_TO_ZERO_S = 4.0
# Replicas are gone after the idle window plus a few metric pushes and the replica's shutdown.
WAIT_FOR_ZERO_S = IDLE_TO_ZERO_S + 12
MAX_QUEUED = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    model = make_tiny_model(Path("/tmp/modeldeploy/models/tiny-llama"))
    config = ServingConfig(
        app_name="zero",
        model=str(model),
        served_model_name="tiny",
        accelerator="cpu",
        gpus_per_replica=0,
        cpus_per_replica=1,
        num_replicas=None,
        autoscaling=AutoscalingConfig(
            min_replicas=0,
            max_replicas=1,
            initial_replicas=1,
            scale_to_zero_after_s=IDLE_TO_ZERO_S,
            scale_down_delay_s=IDLE_TO_ZERO_S,
        ),
        max_queued_requests=MAX_QUEUED,
        engine=EngineConfig(
            dtype="float32", max_model_len=256, max_num_seqs=4,
            gpu_memory_utilization=0.1, enforce_eager=True,
        ),
    )  # fmt: skip
    with modeldeploy_server(config, tmp_path_factory.mktemp("zero"), DEFAULT_INGRESS) as proc:
        yield proc


def _chat(base_url: str, timeout: float = 300) -> httpx.Response:
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 8,
        "temperature": 0,
    }
    return httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=timeout)


def test_request_at_zero_is_held_through_the_cold_start(server: ServerProcess) -> None:
    warm = time.monotonic()
    assert _chat(server.base_url).status_code == 200
    warm_s = time.monotonic() - warm
    time.sleep(WAIT_FOR_ZERO_S)
    cold = time.monotonic()
    response = _chat(server.base_url)
    cold_s = time.monotonic() - cold
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] is not None
    # The engine had to start again: the request waited for it instead of being refused.
    assert cold_s > max(3.0, 5 * warm_s), (warm_s, cold_s)


def test_queue_beyond_the_bound_gets_429_with_retry_after(server: ServerProcess) -> None:
    time.sleep(WAIT_FOR_ZERO_S)
    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(lambda _: _chat(server.base_url), range(12)))
    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {200, 429}, codes
    assert codes.count(200) >= 1
    rejected = [r for r in responses if r.status_code == 429]
    assert rejected, codes
    assert all(r.headers.get("retry-after") == "5" for r in rejected)
    # The server stays healthy afterwards.
    assert _chat(server.base_url).status_code == 200
