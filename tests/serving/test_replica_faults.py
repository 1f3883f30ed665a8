"""A Serve replica killed (SIGKILL) under load, on the real CPU engine behind HAProxy.

Two replicas serve a few long streams and a steady flow of short non-streamed requests; the
replica holding the most streams is killed. What a client sees:
- non-streamed requests sent after the kill are never lost: HAProxy retries a request whose
  connection fails or closes unanswered on the other replica (`retry-on conn-failure
  empty-response`, set in modeldeploy_serving.ingress). Only a request the killed replica was
  computing can fail (at most one per client thread); the test counts both kinds;
- a stream the killed replica was still producing cannot be replayed (part of it was
  delivered): it ends with an error the openai client raises, soon, never a hang; the streams on
  the other replica complete, also when they outlast Ray's default limit for the HAProxy process
  the kill's reload replaced (120 s; `HAPROXY_DRAIN_LIMIT_S` in modeldeploy_serving.ingress).

Which replica took which stream is read from HAProxy's own statistics (requests sent to each
server) as the streams start one by one, so the test does not depend on how HAProxy spreads
them. HAProxy answers those at once; a replica's /metrics, read in the same loop, took up to 35 s
while the replicas streamed on a 2-core machine.
"""

from __future__ import annotations

import csv
import http.client
import io
import os
import re
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import psutil
import pytest

from modeldeploy_serving.config import EngineConfig, ServingConfig
from modeldeploy_serving.ingress import DEFAULT_INGRESS
from modeldeploy_serving.procs import ServerProcess, modeldeploy_server, wait_until
from modeldeploy_serving.tiny_model import make_tiny_model

pytestmark = pytest.mark.timeout(1500)

APP = "faults"
MODEL = "tiny"
# Streams long enough to be running when the replica dies on a fast machine too: past the tiny
# model's 2048 positions (RoPE has no learned table, so vLLM allows it when told to).
MAX_MODEL_LEN = 12288
STREAM_TOKENS = 12000
STREAMS = 4
LOAD_THREADS = 3
# Short requests answered before the kill, so that some are in flight when it comes.
CALLS_BEFORE_KILL = 3
LOAD_AFTER_KILL_S = 15.0
# A hang guard far beyond any answer on a shared machine, not a latency target.
REQUEST_TIMEOUT_S = 300.0
SUCCEEDED = re.compile(r"^vllm:request_success_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)
# In the configuration Ray renders for HAProxy: its statistics page, and its servers.
STATS_PAGE = re.compile(r"^listen stats\n\s+bind \*:(\d+)\n(?:\s+.*\n)*?\s+stats uri (\S+)$", re.M)
SERVER = re.compile(r"^\s+server (\S+) \S+:(\d+) ", re.MULTILINE)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    model = make_tiny_model(Path("/tmp/modeldeploy/models/tiny-llama"))
    config = ServingConfig(
        app_name=APP,
        model=str(model),
        served_model_name=MODEL,
        accelerator="cpu",
        gpus_per_replica=0,
        cpus_per_replica=1,
        num_replicas=2,
        engine=EngineConfig(
            dtype="float32", max_model_len=MAX_MODEL_LEN, max_num_seqs=16,
            gpu_memory_utilization=0.08, enforce_eager=True,
        ),
    )  # fmt: skip
    # On the CPU engine the share is of host memory and includes the worker's own ~1 GB: much
    # less than 0.08 leaves the KV cache nothing ("requested memory for kv" below zero).
    process = modeldeploy_server(config, tmp_path_factory.mktemp("faults"), DEFAULT_INGRESS)
    # Ray's workers inherit the environment the local Ray was started with.
    process.env["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] = "1"
    with process:
        yield process


@dataclass
class Replica:
    process: psutil.Process
    address: str  # host:port of its own HTTP server, the one HAProxy forwards to

    def metrics(self) -> str:
        url = f"http://{self.address}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    def gauge(self, pattern: re.Pattern[str]) -> float:
        return sum(float(v) for v in pattern.findall(self.metrics()))


def _serves_metrics(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
            return b"vllm:num_requests_running" in response.read()
    except (OSError, http.client.HTTPException):  # not HTTP/1 (the replica's gRPC port)
        return False


def _reachable(ip: str) -> str:
    return "127.0.0.1" if ip in ("0.0.0.0", "::", "") else f"[{ip}]" if ":" in ip else ip


def _replicas(server: ServerProcess) -> list[Replica]:
    """This server's replica processes (under its own Ray, by title), each with the port of its
    HTTP server: the listening address that answers vLLM's /metrics. A replica whose server is
    not up yet is left out."""
    assert server.process is not None
    found = []
    for child in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if not child.cmdline()[:1] or not child.cmdline()[0].startswith(
                f"ray::ServeReplica:{APP}:"
            ):
                continue
            listening = {
                f"{_reachable(c.laddr.ip)}:{c.laddr.port}"
                for c in child.net_connections("tcp")
                if c.status == psutil.CONN_LISTEN
            }
        except psutil.NoSuchProcess:
            continue
        http = [a for a in sorted(listening) if _serves_metrics(a)]
        assert len(http) <= 1, (child.pid, sorted(listening), http)
        found += [Replica(child, address) for address in http]
    return found


def _haproxy_config(server: ServerProcess) -> str:
    """The configuration Ray rendered for this server's HAProxy (it names it with `-f`)."""
    assert server.process is not None
    for child in psutil.Process(server.process.pid).children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if cmdline and Path(cmdline[0]).name == "haproxy" and "-f" in cmdline[:-1]:
            return Path(cmdline[cmdline.index("-f") + 1]).read_text()
    raise AssertionError("no HAProxy process under the server")


def _requests_sent(config: str) -> dict[str, int]:
    """How many requests HAProxy has sent to each server (its `stot`), by the server's port."""
    page = STATS_PAGE.search(config)
    assert page is not None, "no statistics page in HAProxy's configuration"
    ports = dict(SERVER.findall(config))
    url = f"http://127.0.0.1:{page[1]}{page[2]};csv"
    with urllib.request.urlopen(url, timeout=10) as response:
        rows = csv.DictReader(io.StringIO(response.read().decode().removeprefix("# ")))
        return {ports[row["svname"]]: int(row["stot"]) for row in rows if row["svname"] in ports}


@dataclass
class Call:
    started: float
    ended: float
    error: str | None


@dataclass
class Stream:
    chunks: int = 0
    finish_reason: str | None = None
    error: BaseException | None = None
    ended: float = 0.0


def _chat(client: openai.OpenAI) -> str | None:
    response = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=8, temperature=0
    )
    return response.choices[0].message.content


def _load(client: openai.OpenAI, stop: threading.Event, calls: list[Call]) -> None:
    """Short non-streamed requests, one after another, until `stop`."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            error = None if _chat(client) is not None else "no content"
        except Exception as caught:
            # The transport's own exception says how the connection failed (refused, reset,
            # closed with no answer); openai's message does not.
            error = f"{type(caught).__name__}: {caught} ({caught.__cause__!r})"
        calls.append(Call(started, time.monotonic(), error))


def _stream(client: openai.OpenAI, result: Stream) -> None:
    try:
        stream = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "tell me a long story"}],
            max_tokens=STREAM_TOKENS,
            temperature=0,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        for chunk in stream:
            result.chunks += 1
            if chunk.choices and chunk.choices[0].finish_reason:
                result.finish_reason = chunk.choices[0].finish_reason
    except Exception as caught:
        result.error = caught
    result.ended = time.monotonic()


def _both_in_rotation(client: openai.OpenAI, replicas: list[Replica]) -> None:
    """Short requests until each replica has answered one through HAProxy: a replica HAProxy
    does not know yet would take no stream."""
    before = [r.gauge(SUCCEEDED) for r in replicas]

    def both_answered() -> bool:
        _chat(client)
        return all(r.gauge(SUCCEEDED) > b for r, b in zip(replicas, before, strict=True))

    wait_until(both_answered, 180, "both replicas answering through HAProxy")


def _start_streams(
    client: openai.OpenAI, replicas: list[Replica], haproxy_config: str
) -> tuple[list[Stream], list[threading.Thread], list[int]]:
    """Start the streams one at a time; return them, their threads and which replica (index
    into `replicas`) runs each, read from HAProxy's requests sent per server as each starts."""
    by_port = {r.address.rsplit(":", 1)[1]: i for i, r in enumerate(replicas)}
    streams, threads, placed = [], [], []
    for _ in range(STREAMS):
        before = _requests_sent(haproxy_config)
        stream = Stream()
        thread = threading.Thread(target=_stream, args=(client, stream))
        thread.start()
        wait_until(lambda s=stream: s.chunks > 0 or s.error is not None, 300, "a stream flowing")
        assert stream.error is None, repr(stream.error)
        grown = [p for p, sent in _requests_sent(haproxy_config).items() if sent > before.get(p, 0)]
        assert len(grown) == 1 and grown[0] in by_port, (grown, by_port)
        streams.append(stream)
        threads.append(thread)
        placed.append(by_port[grown[0]])
    return streams, threads, placed


def test_killed_replica_loses_no_request_and_ends_its_streams_cleanly(
    server: ServerProcess,
) -> None:
    client = openai.OpenAI(
        base_url=f"{server.base_url}/v1",
        api_key="unused",
        max_retries=0,  # only the server side may retry: every failure is counted
        timeout=REQUEST_TIMEOUT_S,
    )
    # The endpoint answers once one replica does; the other's own server may start later.
    replicas: list[Replica] = []

    def both_listening() -> bool:
        replicas[:] = _replicas(server)
        return len(replicas) == 2

    wait_until(both_listening, 300, "both replicas' HTTP servers up")
    _both_in_rotation(client, replicas)

    stop = threading.Event()
    calls: list[Call] = []
    streams, threads, placed = _start_streams(client, replicas, _haproxy_config(server))
    victim_index = max(range(len(replicas)), key=placed.count)
    victim = replicas[victim_index].process
    victim_tree = [victim, *victim.children(recursive=True)]
    loaders = [
        threading.Thread(target=_load, args=(client, stop, calls)) for _ in range(LOAD_THREADS)
    ]
    for thread in loaders:
        thread.start()
    try:
        wait_until(lambda: len(calls) >= CALLS_BEFORE_KILL, 120, "short requests answered")
        killed_at = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        time.sleep(LOAD_AFTER_KILL_S)
    finally:
        stop.set()
        for thread in threads + loaders:
            thread.join(timeout=REQUEST_TIMEOUT_S + 30)
        for process in victim_tree[1:]:
            # The killed replica's engine process, if it outlived its parent.
            if process.is_running():
                process.kill()
    assert not any(thread.is_alive() for thread in threads + loaders), "a client hung"

    failed = [c for c in calls if c.error]
    in_flight = [c for c in calls if c.started < killed_at < c.ended]
    after = [c for c in calls if c.started >= killed_at]
    print(
        f"non-streamed: total={len(calls)} ok={len(calls) - len(failed)} failed={len(failed)} "
        f"(in flight at the kill: {len(in_flight)}, sent after it: {len(after)}, "
        f"of those answered: {sum(c.error is None for c in after)})"
    )
    assert after, "no request was sent after the kill"
    # Nothing that had not started on the killed replica is lost; what it was computing may be
    # (one request per client thread at most).
    assert all(c.error is None for c in after), [c.error for c in after if c.error][:5]
    assert all(c.started < killed_at < c.ended for c in failed), [c.error for c in failed][:5]
    assert len(failed) <= LOAD_THREADS

    on_victim = [s for s, i in zip(streams, placed, strict=True) if i == victim_index]
    elsewhere = [s for s, i in zip(streams, placed, strict=True) if i != victim_index]
    cut = [s for s in on_victim if s.error is not None]
    print(
        f"streams: {len(on_victim)} on the killed replica, {len(cut)} of them cut, "
        f"{len(elsewhere)} on the other; errors: "
        f"{[type(s.error).__name__ + ': ' + str(s.error)[:120] for s in cut]}; "
        f"after the kill in {[round(s.ended - killed_at, 2) for s in cut]} s; the other "
        f"replica's ended {[round(s.ended - killed_at, 2) for s in elsewhere]} s after it"
    )
    # A stream the engine had finished before the kill may still have been in flight to a slow
    # client (HAProxy and the sockets hold the rest) and completes; any other one is cut.
    assert cut, "the kill cut no stream: the killed replica had finished them all"
    for stream in on_victim:
        if stream.error is None:
            assert stream.finish_reason == "length", stream
            continue
        # openai wraps a broken connection as APIConnectionError (its own timeout as the
        # subclass APITimeoutError), a server-sent error event as APIError.
        assert isinstance(stream.error, openai.APIError), repr(stream.error)
        assert not isinstance(stream.error, openai.APITimeoutError), repr(stream.error)
        assert stream.ended - killed_at < REQUEST_TIMEOUT_S / 2
    for stream in elsewhere:
        assert stream.error is None and stream.finish_reason == "length", stream
    # The endpoint still serves.
    assert _chat(client) is not None
