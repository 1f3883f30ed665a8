"""The gateway's pure pieces of the local path: which headers go upstream and back, and the
replica counts the local run's Ray driver publishes for the gateway's own process."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from modeldeploy_serving.gateway.forwarding import (
    SERVED_BY_HEADER,
    forwarded_headers,
    forwarded_raw_headers,
    local_response_headers,
)
from modeldeploy_serving.gateway.replicas import FileSource, counts_from_json, write_counts

CLIENT_HEADERS = [
    (b"host", b"gateway:8000"),
    (b"authorization", b"Bearer client-secret"),
    (b"x-modeldeploy-overflow", b"forbid"),
    (b"accept-encoding", b"gzip"),
    (b"content-length", b"42"),
    (b"connection", b"keep-alive"),
    (b"content-type", b"application/json"),
    (b"x-request-id", b"abc"),
    (b"user-agent", b"OpenAI/Python 2.30.0"),
]


def test_local_forwarding_drops_the_key_and_hop_headers_like_the_provider_path() -> None:
    raw = forwarded_raw_headers(CLIENT_HEADERS)
    assert raw == [
        ("content-type", "application/json"),
        ("x-request-id", "abc"),
        ("user-agent", "OpenAI/Python 2.30.0"),
    ]
    as_text = {k.decode(): v.decode() for k, v in CLIENT_HEADERS}
    assert dict(raw) == forwarded_headers(as_text, None)
    assert "client-secret" not in repr(raw)


def test_provider_forwarding_carries_the_provider_key_only() -> None:
    as_text = {k.decode(): v.decode() for k, v in CLIENT_HEADERS}
    out = forwarded_headers(as_text, "provider-secret")
    assert out["authorization"] == "Bearer provider-secret"
    assert "client-secret" not in repr(out)


def test_local_response_headers_drop_hop_headers_and_say_local() -> None:
    upstream = (
        (b"Content-Type", b"text/event-stream; charset=utf-8"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Date", b"Thu, 26 Nov 2026 01:00:00 GMT"),
        (b"Server", b"uvicorn"),
        (b"x-request-id", b"abc"),
    )
    assert local_response_headers(upstream) == [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"x-request-id", b"abc"),
        (SERVED_BY_HEADER.encode(), b"local"),
    ]


def test_counts_from_json_reads_ints_only() -> None:
    text = '{"a": 2, "b": 0, "c": null, "d": "3", "e": true}'
    assert counts_from_json(text, ["a", "b", "c", "d", "e", "missing"]) == {
        "a": 2,
        "b": 0,
        "c": None,
        "d": None,
        "e": None,
        "missing": None,
    }
    assert counts_from_json("not json", ["a"]) == {"a": None}
    assert counts_from_json("[1, 2]", ["a"]) == {"a": None}


def test_file_source_reads_what_was_written_and_unknown_once_stale(tmp_path: Path) -> None:
    path = tmp_path / "replicas.json"
    source = FileSource(path, max_age_s=5.0)
    assert asyncio.run(source.ready_replicas(["app"])) == {"app": None}  # not written yet
    write_counts(path, {"app": 1, "cold": 0})
    assert asyncio.run(source.ready_replicas(["app", "cold"])) == {"app": 1, "cold": 0}
    assert not path.with_name(path.name + ".partial").exists()
    old = time.time() - 60
    os.utime(path, (old, old))
    assert asyncio.run(source.ready_replicas(["app", "cold"])) == {"app": None, "cold": None}
