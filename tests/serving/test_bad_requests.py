"""Bad HTTP input against the served endpoint (HAProxy in front of vLLM's app in the replica):
each gets a 4xx OpenAI error object naming what was wrong, never a 5xx, and a normal request
succeeds afterwards.

What answers each case, as measured on this stack:
- too large max_tokens, empty messages, wrong content type, a 10 MB body: vLLM's app in the
  replica (its validation), with `{"error": {"message", "type", "param", "code"}}`; no layer
  limits the body size, and vLLM refuses a long text before tokenizing it;
- unknown path, wrong method: Starlette's router in the replica, shaped as OpenAI error objects
  by modeldeploy_serving.http_errors (FastAPI's default is `{"detail": ...}`);
- unknown parameters: vLLM's request models allow extra fields (`extra="allow"`, as OpenAI's
  API does) and ignore them: 200;
- a client that sends its headers and part of its body, then stalls: HAProxy, which waits for
  a whole request before it forwards it, answers 408 after its client inactivity timeout
  (`HAPROXY_CLIENT_TIMEOUT_S` in modeldeploy_serving.ingress), as an OpenAI error object
  (modeldeploy_serving.haproxy_errors), and serves other clients meanwhile.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from modeldeploy_serving.ingress import HAPROXY_CLIENT_TIMEOUT_S
from modeldeploy_serving.procs import read_until_closed

from .conftest import Servers

pytestmark = pytest.mark.timeout(1200)

CHAT = [{"role": "user", "content": "Tell me about the quick brown fox."}]
# Generous: the machine is shared; these bound a hang, they do not measure speed.
REQUEST_TIMEOUT_S = 120.0


def _error(response: httpx.Response) -> dict[str, Any]:
    """The OpenAI error object of a 4xx response (asserting its shape)."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) >= {"message", "type", "param", "code"}, error
    assert error["code"] == response.status_code and error["message"] and error["type"]
    return dict(error)


def _still_serving(client: openai.OpenAI, model: str) -> None:
    response = client.chat.completions.create(
        model=model, messages=CHAT, max_tokens=4, temperature=0
    )
    assert response.choices[0].message.content is not None


def _post(servers: Servers, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{servers.tiny.base_url}{path}", timeout=REQUEST_TIMEOUT_S, **kwargs)


def test_max_tokens_beyond_max_model_len_is_400(
    servers: Servers, client: openai.OpenAI, model: str
) -> None:
    limit = servers.tiny_config.engine.max_model_len
    assert limit is not None
    for field in ("max_tokens", "max_completion_tokens"):
        body = {"model": model, "messages": CHAT, field: limit * 1000}
        error = _error(_post(servers, "/v1/chat/completions", json=body))
        assert error["param"] == field
        assert field in error["message"] and str(limit) in error["message"]
    # The completions API the same way.
    body = {"model": model, "prompt": "hello", "max_tokens": 10**9}
    error = _error(_post(servers, "/v1/completions", json=body))
    assert error["param"] == "max_tokens" and "max_tokens" in error["message"]
    _still_serving(client, model)


def test_empty_messages_list_is_400(servers: Servers, client: openai.OpenAI, model: str) -> None:
    error = _error(_post(servers, "/v1/chat/completions", json={"model": model, "messages": []}))
    # vLLM names no `param` here (null); its message says what is missing.
    assert "empty conversation" in error["message"] and "message" in error["message"]
    _still_serving(client, model)


def test_unknown_parameters_are_accepted_and_ignored(
    servers: Servers, client: openai.OpenAI, model: str
) -> None:
    # vLLM's request models allow extra fields, as OpenAI's API does: the documented behaviour
    # is 200, the field ignored. The same request without it gives the same greedy text.
    body = {"model": model, "messages": CHAT, "max_tokens": 6, "temperature": 0}
    plain = _post(servers, "/v1/chat/completions", json=body)
    extra = _post(
        servers,
        "/v1/chat/completions",
        json=body | {"no_such_parameter": {"nested": [1, 2]}, "frobnicate": True},
    )
    assert plain.status_code == 200 and extra.status_code == 200, extra.text[:500]
    text = extra.json()["choices"][0]["message"]["content"]
    assert text == plain.json()["choices"][0]["message"]["content"]
    _still_serving(client, model)


def test_wrong_content_type_is_400(servers: Servers, client: openai.OpenAI, model: str) -> None:
    body = json.dumps({"model": model, "messages": CHAT, "max_tokens": 4})
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = _post(
            servers,
            "/v1/chat/completions",
            content=body,
            headers={"content-type": content_type},
        )
        error = _error(response)
        assert "application/json" in error["message"]
    _still_serving(client, model)


def test_10_mb_body_is_refused_with_an_error_object(
    servers: Servers, client: openai.OpenAI, model: str
) -> None:
    ten_mb = 10 * 1024 * 1024
    # Valid JSON: one 10 MB message. vLLM refuses it before tokenizing (more characters than
    # max_model_len tokens can hold), naming the input.
    huge = {"model": model, "messages": [{"role": "user", "content": "a " * (ten_mb // 2)}]}
    content = json.dumps(huge).encode()
    assert len(content) >= ten_mb
    response = _post(
        servers,
        "/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json"},
    )
    error = _error(response)
    assert "maximum context length" in error["message"]
    # 10 MB that is not JSON at all.
    response = _post(
        servers,
        "/v1/chat/completions",
        content=b"{" * ten_mb,
        headers={"content-type": "application/json"},
    )
    _error(response)
    _still_serving(client, model)


def test_unknown_path_and_wrong_method_are_openai_errors(
    servers: Servers, client: openai.OpenAI, model: str
) -> None:
    # Starlette's router answers these; modeldeploy_serving.http_errors shapes them.
    missing = httpx.post(f"{servers.tiny.base_url}/v1/chat/completion", json={}, timeout=30)
    assert missing.status_code == 404
    assert "/v1/chat/completion" in _error(missing)["message"]
    wrong = httpx.get(f"{servers.tiny.base_url}/v1/chat/completions", timeout=30)
    assert wrong.status_code == 405 and "POST" in wrong.headers["allow"]
    assert "Method Not Allowed" in _error(wrong)["message"]
    # The openai client reads them as errors with a message.
    with pytest.raises(openai.NotFoundError) as caught:
        client.with_options(base_url=f"{servers.tiny.base_url}/v2").models.list()
    assert "Not Found" in caught.value.message
    _still_serving(client, model)


def _stalled_request(base_url: str, model: str) -> socket.socket:
    """A connection that sent its headers and half of its body, then stopped sending."""
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    body = json.dumps({"model": model, "messages": CHAT, "max_tokens": 4}).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection((parts.hostname, parts.port), timeout=REQUEST_TIMEOUT_S)
    sock.sendall(head)
    # Trickle the first half, a few bytes at a time, then stall.
    for i in range(0, len(body) // 2, 8):
        sock.sendall(body[i : i + 8])
        time.sleep(0.05)
    return sock


def test_a_stalled_client_is_timed_out_without_blocking_others(
    servers: Servers, client: openai.OpenAI, model: str
) -> None:
    stalled = [_stalled_request(servers.tiny.base_url, model) for _ in range(4)]
    started = time.monotonic()
    try:
        # Other clients are served while those connections hang on to their half requests.
        for _ in range(3):
            _still_serving(client, model)
        assert httpx.get(f"{servers.tiny.base_url}/v1/models", timeout=30).status_code == 200
        # The server ends every stalled request itself: recv returns (an HTTP error or the
        # end of the stream) long before the hang guard, which is far beyond the timeout.
        guard_s = HAPROXY_CLIENT_TIMEOUT_S + REQUEST_TIMEOUT_S
        for sock in stalled:
            sock.settimeout(guard_s)
        answers = [read_until_closed(sock) for sock in stalled]
    finally:
        for sock in stalled:
            sock.close()
    waited_s = time.monotonic() - started
    # Not before the client went quiet for the inactivity timeout: the server waited for it.
    assert waited_s >= HAPROXY_CLIENT_TIMEOUT_S * 0.9, waited_s
    for answer in answers:
        # HAProxy's 408, through modeldeploy-haproxy: an OpenAI error object, not its HTML page.
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answer[:300]
        assert b"\r\ncontent-type: application/json" in head.lower(), head
        error = json.loads(body)["error"]
        assert error["code"] == 408 and "did not arrive completely" in error["message"], error
    _still_serving(client, model)
