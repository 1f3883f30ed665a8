"""The gateway in front of the local serving path, against a real provider.

One `modeldeploy serve -f FILE` runs three models behind the gateway on one local Ray (real
vLLM CPU engines): `tiny-burst` (one replica of two slots, API keys, overflow on ColdStart and
Saturated), `tiny-private` (localOnly, a small local queue) and `tiny-cold` (minReplicas 0,
overflow on ColdStart). The provider is a second, bare vLLM OpenAI server on the same tiny model
under the name `hosted-tiny`, requiring its own API key; its access log says what reached it.
Keys are random per run, so a grep over every log shows whether one leaked.
"""

from __future__ import annotations

import re
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from modeldeploy_serving.config import EngineConfig, ServingConfig
from modeldeploy_serving.local import free_port
from modeldeploy_serving.procs import ServerProcess, bare_vllm_server
from modeldeploy_serving.tiny_model import make_tiny_model

pytestmark = pytest.mark.timeout(1800)

TINY = Path("/tmp/modeldeploy/models/tiny-llama")
HOSTED = "hosted-tiny"
SERVED_BY = "x-modeldeploy-served-by"
BURST = 24
# Tokens per request in a burst: long enough that queueing behind two running requests takes
# longer than the bound (the tiny model is fast).
LONG = 200
MAX_QUEUE_WAIT_S = 0.5
WANTED_LABELS = {"model": "tiny-burst", "served_by": "overflow", "reason": "Saturated"}
PROVIDER_POSTS = re.compile(r'"POST /v1/(chat/)?completions HTTP/1\.1"')


@dataclass
class Stack:
    gateway: ServerProcess
    provider: ServerProcess
    client_key: str
    provider_key: str
    logs: Path
    started: float
    errors: list[str]

    @property
    def url(self) -> str:
        return f"{self.gateway.base_url}/v1"

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.url, api_key=key or self.client_key, max_retries=0, timeout=300
        )

    def provider_requests(self) -> int:
        """Completions the provider's access log shows, once the log has stopped growing."""
        count = -1
        while True:
            seen = len(PROVIDER_POSTS.findall(self.provider.log_path.read_text(errors="replace")))
            if seen == count:
                return seen
            count = seen
            time.sleep(1.0)


def _model_deployment(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    engine = {
        "dtype": "float32",
        "maxModelLen": 256,
        "maxNumSeqs": 2,
        "gpuMemoryUtilization": 0.1,
        "extraArgs": ["--enforce-eager"],
    }
    base = {
        "model": {"source": f"file://{TINY}", "servedModelName": f"tiny-{name}"},
        "engine": engine,
        "resources": {"accelerator": "cpu", "cpu": "1", "memory": "4Gi"},
    }
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": base | spec,
    }


def _documents(provider_url: str) -> list[dict[str, Any]]:
    keys = {"apiKeysSecretRef": {"name": "client-keys"}}
    overflow = {
        "baseUrl": f"{provider_url}/v1",
        "model": HOSTED,
        "apiKeySecretRef": {"name": "provider", "key": "token"},
        "maxQueueWaitSeconds": MAX_QUEUE_WAIT_S,
    }
    return [
        _model_deployment(
            "burst",
            {
                "endpoint": keys,
                "overflow": overflow,
                "scaling": {"minReplicas": 1, "maxReplicas": 1, "maxQueuedRequests": 2},
            },
        ),
        _model_deployment(
            "private",
            {
                "endpoint": keys,
                "privacy": {"localOnly": True},
                "scaling": {"minReplicas": 1, "maxReplicas": 1, "maxQueuedRequests": 2},
            },
        ),
        _model_deployment(
            "cold",
            {
                "overflow": overflow | {"when": ["ColdStart"]},
                "scaling": {"minReplicas": 0, "maxReplicas": 1},
            },
        ),
    ]


def _provider_config() -> ServingConfig:
    return ServingConfig(
        model=str(TINY),
        served_model_name=HOSTED,
        accelerator="cpu",
        gpus_per_replica=0,
        engine=EngineConfig(
            dtype="float32", max_model_len=256, max_num_seqs=16,
            gpu_memory_utilization=0.1, enforce_eager=True,
        ),
    )  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    make_tiny_model(TINY)
    started = time.time()
    logs = tmp_path_factory.mktemp("gateway")
    client_key, provider_key = f"ck-{secrets.token_hex(12)}", f"pk-{secrets.token_hex(12)}"
    secrets_dir = logs / "secrets"
    (secrets_dir / "client-keys").mkdir(parents=True)
    (secrets_dir / "client-keys" / "api-keys").write_text(f"ck-old-unused\n{client_key}\n")
    (secrets_dir / "provider").mkdir()
    (secrets_dir / "provider" / "token").write_text(provider_key + "\n")

    provider = bare_vllm_server(_provider_config(), logs, api_key=provider_key)
    spec_file = logs / "models.yaml"
    spec_file.write_text(yaml.safe_dump_all(_documents(provider.base_url)))
    port = free_port()
    argv = [sys.executable, "-m", "modeldeploy_operator.cli", "serve", "-f", str(spec_file)]
    argv += ["--port", str(port), "--secrets-dir", str(secrets_dir)]
    gateway = ServerProcess(argv, port, logs / "serve.log", "modeldeploy serve (gateway)")
    gateway.ready_path = "/health"
    try:
        provider.launch()
        gateway.launch()
        provider.wait_ready()
        gateway.wait_ready()
        _wait_for_models(f"{gateway.base_url}/v1", client_key)
        yield Stack(gateway, provider, client_key, provider_key, logs, started, [])
    finally:
        gateway.stop()
        provider.stop()


def _wait_for_models(url: str, key: str, timeout_s: float = 600) -> None:
    """The gateway answers before its local models are up: wait until each answers."""
    deadline = time.monotonic() + timeout_s
    for model in ("tiny-burst", "tiny-private"):
        while True:
            response = _chat(url, key, model)
            if response.status_code == 200 and response.headers[SERVED_BY] == "local":
                break
            assert time.monotonic() < deadline, response.text
            time.sleep(1)


# One pool for the bursts: its connections are open before a burst starts, so the requests
# arrive together instead of one connection set-up after another.
HTTP = httpx.Client(
    timeout=300, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
)


def _chat(
    url: str, key: str | None, model: str, max_tokens: int = 8, **headers: str
) -> httpx.Response:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
    }
    sent = {k.replace("_", "-"): v for k, v in headers.items()}
    if key is not None:
        sent["authorization"] = f"Bearer {key}"
    return HTTP.post(f"{url}/chat/completions", json=body, headers=sent)


def _burst(stack: Stack, model: str, **headers: str) -> list[httpx.Response]:
    """BURST requests at the same moment (a barrier releases them together)."""
    barrier = threading.Barrier(BURST)

    def one(_: int) -> httpx.Response:
        HTTP.get(f"{stack.gateway.base_url}/health")  # a kept-alive connection per thread
        barrier.wait()
        return _chat(stack.url, stack.client_key, model, LONG, **headers)

    with ThreadPoolExecutor(max_workers=BURST) as pool:
        return list(pool.map(one, range(BURST)))


def test_models_lists_every_model_the_key_opens(stack: Stack) -> None:
    listed = sorted(m.id for m in stack.client().models.list())
    assert listed == sorted(["tiny-burst", "tiny-private", "tiny-cold", HOSTED])
    anonymous = httpx.get(f"{stack.url}/models", timeout=30).json()
    assert [m["id"] for m in anonymous["data"]] == ["tiny-cold"]


def test_no_key_or_a_wrong_key_is_401_the_right_key_200(stack: Stack) -> None:
    missing = _chat(stack.url, None, "tiny-burst")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    stack.errors.append(missing.text)
    with pytest.raises(openai.AuthenticationError) as wrong:
        stack.client("ck-wrong").chat.completions.create(
            model="tiny-burst", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    stack.errors.append(str(wrong.value))
    raw = stack.client().chat.completions.with_raw_response.create(
        model="tiny-burst", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert raw.http_response.status_code == 200
    assert raw.headers[SERVED_BY] == "local"
    assert raw.parse().choices[0].message.content is not None


def test_cold_start_is_served_by_the_provider_until_the_replica_is_up(stack: Stack) -> None:
    client = stack.client()
    served: list[str] = []
    # First among the load tests: a cold start on a busy 2-core machine takes minutes.
    deadline = time.monotonic() + 900
    while served[-3:] != ["local"] * 3:
        assert time.monotonic() < deadline, served
        raw = client.chat.completions.with_raw_response.create(
            model="tiny-cold", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        assert raw.http_response.status_code == 200
        served.append(raw.headers[SERVED_BY])
        time.sleep(2.0)
    first_local = served.index("local")
    assert first_local > 0 and set(served[:first_local]) == {"overflow"}, served
    assert set(served[first_local:]) == {"local"}, served
    print(f"cold start: {first_local} by the provider, then {len(served) - first_local} local")


def test_saturation_overflows_some_requests_and_all_succeed(stack: Stack) -> None:
    for _ in range(3):  # the gateway learns the local service time
        assert _chat(stack.url, stack.client_key, "tiny-burst", LONG).status_code == 200
    before = stack.provider_requests()
    responses = _burst(stack, "tiny-burst")
    assert [r.status_code for r in responses] == [200] * BURST, [r.text for r in responses]
    served = [r.headers[SERVED_BY] for r in responses]
    overflowed = [r for r in responses if r.headers[SERVED_BY] == "overflow"]
    assert 0 < len(overflowed) < BURST, served
    # The provider answered them, under its own name; the local ones stayed local.
    assert all(r.json()["model"] == HOSTED for r in overflowed)
    assert all(r.json()["model"] == "tiny-burst" for r in responses if r not in overflowed)
    assert stack.provider_requests() - before == len(overflowed)
    print(f"saturation: {BURST - len(overflowed)} local, {len(overflowed)} overflow, all 200")
    metrics = httpx.get(f"{stack.gateway.base_url}/metrics", timeout=30).text
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("modeldeploy_gateway_requests_total{")
        and all(f'{k}="{v}"' in line for k, v in WANTED_LABELS.items())
    ]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= len(overflowed), metrics


def test_streaming_through_overflow_with_the_openai_client(stack: Stack) -> None:
    client = stack.client()

    barrier = threading.Barrier(BURST)

    def stream(_: int) -> tuple[str, list[str]]:
        barrier.wait()
        with client.chat.completions.with_streaming_response.create(
            model="tiny-burst",
            messages=[{"role": "user", "content": "hello"}],
            max_tokens=LONG,
            temperature=0,
            stream=True,
            extra_body={"ignore_eos": True},
        ) as response:
            pieces = [c.choices[0].delta.content or "" for c in response.parse() if c.choices]
            return response.headers[SERVED_BY], pieces

    with ThreadPoolExecutor(max_workers=BURST) as pool:
        results = list(pool.map(stream, range(BURST)))
    overflowed = [pieces for served_by, pieces in results if served_by == "overflow"]
    assert overflowed, [served_by for served_by, _ in results]
    for pieces in (p for _, p in results):
        assert len(pieces) > 2 and "".join(pieces)  # really streamed, token by token


def test_local_only_sends_nothing_out_and_answers_429_past_the_bound(stack: Stack) -> None:
    before = stack.provider_requests()
    responses = _burst(stack, "tiny-private")
    codes = sorted(r.status_code for r in responses)
    assert set(codes) == {200, 429}, codes
    for rejected in (r for r in responses if r.status_code == 429):
        assert int(rejected.headers["retry-after"]) >= 1
        assert rejected.json()["error"]["type"] == "rate_limit_error"
        stack.errors.append(rejected.text)
    assert all(r.headers[SERVED_BY] == "local" for r in responses if r.status_code == 200)
    # The same burst on the overflow model, with overflow forbidden per request.
    forbidden = _burst(stack, "tiny-burst", x_modeldeploy_overflow="forbid")
    assert {r.status_code for r in forbidden} <= {200, 429}
    assert stack.provider_requests() == before  # the provider's access log: 0 requests
    print(f"localOnly: {codes.count(200)} x 200, {codes.count(429)} x 429, 0 at the provider")


def test_provider_down_is_a_prompt_503_and_the_local_path_is_unaffected(stack: Stack) -> None:
    stack.provider.stop()
    started = time.monotonic()
    responses = _burst(stack, "tiny-burst")
    overflowed = [r for r in responses if r.headers.get(SERVED_BY) == "overflow"]
    assert overflowed, [r.status_code for r in responses]
    for response in overflowed:
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "overflow_unavailable" and "tiny-burst" in error["message"]
        stack.errors.append(response.text)
    assert all(r.status_code == 200 for r in responses if r not in overflowed)
    assert time.monotonic() - started < 120  # the burst's local work; no request hung
    slowest = max(r.elapsed.total_seconds() for r in overflowed)
    print(f"provider down: {len(overflowed)} x 503, slowest {slowest:.3f} s")
    alone = _chat(stack.url, stack.client_key, "tiny-burst")
    assert alone.status_code == 200 and alone.headers[SERVED_BY] == "local"


def test_no_key_appears_in_any_log_or_error(stack: Stack) -> None:
    texts = {"error responses": "\n".join(stack.errors)}
    texts["modeldeploy serve"] = stack.gateway.log_path.read_text(errors="replace")
    texts["gateway metrics"] = httpx.get(f"{stack.gateway.base_url}/metrics", timeout=30).text
    # Every log of this run: the provider's, and the local Ray's (Serve, replicas, engines).
    for path in stack.logs.glob("*.log"):
        texts[str(path)] = path.read_text(errors="replace")
    for path in Path("/tmp/ray").glob("session_*/logs/**/*"):
        if path.is_file() and path.stat().st_mtime > stack.started:
            texts[str(path)] = path.read_text(errors="replace")
    assert len(texts) > 5, list(texts)
    for key in (stack.client_key, stack.provider_key):
        leaked = [name for name, text in texts.items() if key in text]
        assert leaked == [], leaked
