"""Errors of the gateway's local path reach OpenAI clients as error objects.

The engine's own errors are JSON and pass unchanged; a serving proxy's may not be: Serve's
Python proxy, and HAProxy without modeldeploy-haproxy, answer a replica lost mid-request, or no
replica left, with Ray's plain-text "Internal Server Error". A body too large gets 413, a body
or headers that stall get 408, and the gateway keeps answering. A real gateway process in front
of a real HTTP upstream that answers like each, called with the official client.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from modeldeploy_serving.gateway.forwarding import SERVED_BY_HEADER, needs_error_object
from modeldeploy_serving.local import free_port
from modeldeploy_serving.procs import ServerProcess, read_until_closed

MAX_REQUEST_BYTES = 64 * 1024
READ_TIMEOUT_S = 2.0

ENGINE_ERROR = {
    "error": {
        "message": "max_tokens must be at least 1, got 0.",
        "type": "BadRequestError",
        "param": "max_tokens",
        "code": 400,
    }
}

# An upstream answer that outlasts the gateway's header deadline.
SLOW_ANSWER_S = READ_TIMEOUT_S * 2

# Answers as the request's `user` field asks: Ray's HAProxy error page, or vLLM's JSON error
# (after SLOW_ANSWER_S for "slow-engine-error").
UPSTREAM = f"""
import asyncio, json, sys
import uvicorn

PROXY_PAGE = b"Internal Server Error"
ENGINE_ERROR = json.dumps({ENGINE_ERROR!r}).encode()

async def app(scope, receive, send):
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    user = json.loads(body).get("user")
    if user == "slow-engine-error":
        await asyncio.sleep({SLOW_ANSWER_S})
    if user == "proxy-error":
        status, kind, content = 500, b"text/plain", PROXY_PAGE
    else:
        status, kind, content = 400, b"application/json", ENGINE_ERROR
    await send({{"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind)]}})
    await send({{"type": "http.response.body", "body": content}})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def test_only_errors_that_are_not_json_are_replaced() -> None:
    assert needs_error_object(500, "text/plain")
    assert needs_error_object(503, "text/html")
    assert needs_error_object(404, "application/octet-stream")
    assert not needs_error_object(400, "application/json")
    assert not needs_error_object(200, "text/event-stream")
    assert not needs_error_object(200, "text/plain")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    scratch: Path = tmp_path_factory.mktemp("gateway")
    upstream_port, gateway_port = free_port(), free_port()
    route = {
        "name": "m",
        "base_url": f"http://127.0.0.1:{upstream_port}",
        "app_name": "m",
        "slots_per_replica": 4,
    }
    config = {
        "routes": [route],
        "max_request_bytes": MAX_REQUEST_BYTES,
        "request_read_timeout_s": READ_TIMEOUT_S,
    }
    (scratch / "gateway.json").write_text(json.dumps(config))
    (scratch / "replicas.json").write_text(json.dumps({"m": 1}))
    # The upstream answers no health path; the gateway's first request waits for it to listen.
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(upstream_port)])
    gateway = ServerProcess(
        [
            *(sys.executable, "-m", "modeldeploy_serving.gateway", str(scratch / "gateway.json")),
            *("--replicas-file", str(scratch / "replicas.json"), "--port", str(gateway_port)),
        ],
        gateway_port,
        scratch / "gateway.log",
        "gateway",
        ready_path="/health",
    )
    try:
        gateway.start()
        yield openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0)
    finally:
        gateway.stop()
        upstream.terminate()
        upstream.wait(timeout=30)


def _chat(client: openai.OpenAI, user: str, content: str = "hi") -> None:
    client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": content}], user=user
    )


def _still_answering(client: openai.OpenAI) -> None:
    """The engine's own error object passes through unchanged, marked as served locally."""
    with pytest.raises(openai.BadRequestError) as raised:
        _chat(client, "engine-error")
    assert raised.value.body == ENGINE_ERROR["error"]
    assert raised.value.response.headers[SERVED_BY_HEADER] == "local"


def test_the_serving_proxys_plain_text_error_becomes_an_error_object(
    client: openai.OpenAI,
) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        _chat(client, "proxy-error")
    assert raised.value.status_code == 500
    assert isinstance(raised.value.body, dict), raised.value.body
    assert raised.value.body["code"] == "local_error"
    assert "The local replicas of 'm' failed" in raised.value.body["message"]
    assert raised.value.response.headers["content-type"] == "application/json"
    _still_answering(client)


def test_a_body_beyond_the_limit_gets_413(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        _chat(client, "engine-error", content="x" * MAX_REQUEST_BYTES)
    assert raised.value.status_code == 413
    assert isinstance(raised.value.body, dict), raised.value.body
    assert raised.value.body["code"] == "request_too_large"
    assert str(MAX_REQUEST_BYTES) in raised.value.body["message"]
    _still_answering(client)


def test_a_body_that_stalls_gets_408_after_the_read_timeout(client: openai.OpenAI) -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    host, port = client.base_url.host, client.base_url.port
    assert port is not None
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=READ_TIMEOUT_S + 30) as sock:
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body[: len(body) // 2])
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            part = sock.recv(65536)
            if not part:
                break
            answer += part
    waited_s = time.monotonic() - started
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"408", answer[:300]
    assert waited_s >= READ_TIMEOUT_S * 0.9, waited_s
    error = json.loads(rest.partition(b"\r\n\r\n")[2])["error"]
    assert error["code"] == "request_timeout"
    _still_answering(client)


def _status_and_error(answer: bytes) -> tuple[bytes, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split()[1], json.loads(body)["error"]


def _stalled(client: openai.OpenAI, sent: bytes) -> tuple[bytes, float]:
    """What the gateway answers a connection that sent `sent` and stalled, and when."""
    host, port = client.base_url.host, client.base_url.port
    assert port is not None
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=READ_TIMEOUT_S + 30) as sock:
        sock.sendall(sent)
        answer = read_until_closed(sock)
    return answer, time.monotonic() - started


def test_headers_that_stall_get_408_after_the_read_timeout(client: openai.OpenAI) -> None:
    # uvicorn alone would hold such a connection for good.
    answer, waited_s = _stalled(client, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nCont")
    assert READ_TIMEOUT_S * 0.9 <= waited_s < READ_TIMEOUT_S + 20, waited_s
    status, error = _status_and_error(answer)
    assert status == b"408", answer[:200]
    assert error["code"] == "request_timeout" and "line and headers" in error["message"]
    _still_answering(client)


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(
    client: openai.OpenAI,
) -> None:
    # Closed like an idle keep-alive connection: no 408 a pooled client could take for its own.
    answer, waited_s = _stalled(client, b"")
    assert answer == b""
    assert READ_TIMEOUT_S * 0.9 <= waited_s < READ_TIMEOUT_S + 20, waited_s


def test_a_keep_alive_connection_gets_the_same_deadline_for_its_next_request(
    client: openai.OpenAI,
) -> None:
    assert client.base_url.port is not None
    connection = http.client.HTTPConnection(
        client.base_url.host, client.base_url.port, timeout=READ_TIMEOUT_S + 30
    )
    body = json.dumps({"model": "m", "messages": [], "user": "engine-error"})
    connection.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    first = connection.getresponse()
    assert first.status == 400 and json.loads(first.read()) == ENGINE_ERROR
    # Answered, and the connection kept open; the next request stalls in its headers.
    assert connection.sock is not None
    connection.sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHo")
    status, error = _status_and_error(read_until_closed(connection.sock))
    connection.close()
    assert status == b"408" and error["code"] == "request_timeout"


class _Answer(io.BytesIO):
    """Bytes a connection received, read as http.client reads a socket; what is left after a
    response stays readable."""

    def makefile(self, mode: str) -> _Answer:
        return self

    def close(self) -> None:  # http.client closes its file once a response is read
        pass


def test_a_pipelined_request_that_stalls_ends_the_connection_after_the_answer_before_it(
    client: openai.OpenAI,
) -> None:
    # The deadline of the second request passes while the first is still being answered: that
    # answer arrives whole, with no 408 written into it or after it, and the connection closes.
    body = json.dumps({"model": "m", "messages": [], "user": "slow-engine-error"}).encode()
    first = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    address = (client.base_url.host, client.base_url.port)
    started = time.monotonic()
    with socket.create_connection(address, timeout=SLOW_ANSWER_S + 30) as sock:
        sock.sendall(first + b"POST /v1/chat/completions HTTP/1.1\r\nHo")
        answer = _Answer(read_until_closed(sock))
    assert time.monotonic() - started >= SLOW_ANSWER_S * 0.9
    response = http.client.HTTPResponse(answer, method="POST")  # type: ignore[arg-type]
    response.begin()
    assert response.status == 400 and json.loads(response.read()) == ENGINE_ERROR
    assert answer.read() == b"", answer.getvalue()
    _still_answering(client)
