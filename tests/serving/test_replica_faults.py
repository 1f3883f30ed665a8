"""A Serve replica killed (SIGKILL) under load, on the real CPU engine behind HAProxy.

Two replicas serve a steady stream of short non-streamed requests and a few long streams. One
replica's process is killed. What a client sees:
- non-streamed requests are never lost: those sent after the kill, and those the killed replica
  had taken but not answered, are retried by HAProxy on the other replica (`retry-on
  conn-failure empty-response`, set in modeldeploy_serving.ingress);
- a stream the killed replica was producing cannot be replayed (part of it was delivered): it
  ends with an error the openai client raises, within a bounded time, never a hang; the
  streams on the other replica complete.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import psutil
import pytest

from modeldeploy_serving.config import EngineConfig, ServingConfig
from modeldeploy_serving.ingress import DEFAULT_INGRESS
from modeldeploy_serving.procs import ServerProcess, modeldeploy_server
from modeldeploy_serving.tiny_model import make_tiny_model

pytestmark = pytest.mark.timeout(1500)

APP = "faults"
MODEL = "tiny"
# Long streams (ignore_eos) so that they are still running when the replica dies.
STREAM_TOKENS = 1500
STREAMS = 6
LOAD_THREADS = 3
LOAD_BEFORE_KILL_S = 4.0
LOAD_AFTER_KILL_S = 20.0
# A hang guard far beyond any answer on a shared machine, not a latency target.
REQUEST_TIMEOUT_S = 180.0


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
            dtype="float32", max_model_len=2048, max_num_seqs=16,
            gpu_memory_utilization=0.02, enforce_eager=True,
        ),
    )  # fmt: skip
    with modeldeploy_server(config, tmp_path_factory.mktemp("faults"), DEFAULT_INGRESS) as proc:
        yield proc


def _replicas(server: ServerProcess) -> list[psutil.Process]:
    """The replica processes of this server's own Ray (children of its raylet), by title."""
    assert server.process is not None
    found = []
    for child in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if child.cmdline()[:1] and child.cmdline()[0].startswith(f"ray::ServeReplica:{APP}:"):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


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


def _load(client: openai.OpenAI, stop: threading.Event, calls: list[Call]) -> None:
    """Short non-streamed requests, one after another, until `stop`."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            response = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "hello"}],
                max_tokens=8,
                temperature=0,
            )
            error = None if response.choices[0].message.content is not None else "no content"
        except Exception as caught:
            error = f"{type(caught).__name__}: {caught}"
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


def _wait_for(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise TimeoutError(f"not within {timeout_s:.0f} s: {what}")


def test_killed_replica_loses_no_request_and_ends_its_streams_cleanly(
    server: ServerProcess,
) -> None:
    client = openai.OpenAI(
        base_url=f"{server.base_url}/v1",
        api_key="unused",
        max_retries=0,  # only the server side may retry: every failure is counted
        timeout=REQUEST_TIMEOUT_S,
    )
    replicas = _replicas(server)
    assert len(replicas) == 2, replicas
    victim = replicas[0]
    victim_tree = [victim, *victim.children(recursive=True)]

    stop = threading.Event()
    calls: list[Call] = []
    streams = [Stream() for _ in range(STREAMS)]
    threads = [
        threading.Thread(target=_load, args=(client, stop, calls)) for _ in range(LOAD_THREADS)
    ] + [threading.Thread(target=_stream, args=(client, s)) for s in streams]
    for thread in threads:
        thread.start()
    try:
        # Every stream is flowing (HAProxy's leastconn spreads them over both replicas).
        _wait_for(lambda: all(s.chunks > 0 or s.error for s in streams), 300, "streams flowing")
        time.sleep(LOAD_BEFORE_KILL_S)
        assert not any(s.finish_reason or s.error for s in streams), "streams ended too soon"
        killed_at = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        time.sleep(LOAD_AFTER_KILL_S)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=REQUEST_TIMEOUT_S + 30)
        for process in victim_tree[1:]:
            # The killed replica's engine process, if it outlived its parent.
            if process.is_running():
                process.kill()
    assert not any(thread.is_alive() for thread in threads), "a client hung"

    failed = [c for c in calls if c.error]
    in_flight = [c for c in calls if c.started < killed_at < c.ended]
    after = [c for c in calls if c.started >= killed_at]
    print(
        f"non-streamed: total={len(calls)} ok={len(calls) - len(failed)} failed={len(failed)} "
        f"(in flight at the kill: {len(in_flight)}, sent after it: {len(after)})"
    )
    assert after, "no request was sent after the kill"
    assert not failed, [c.error for c in failed[:5]]

    broken = [s for s in streams if s.error is not None]
    whole = [s for s in streams if s.error is None]
    print(
        f"streams: {len(whole)} completed, {len(broken)} ended with an error: "
        f"{[type(s.error).__name__ + ': ' + str(s.error)[:120] for s in broken]}; "
        f"error after the kill in {[round(s.ended - killed_at, 2) for s in broken]} s"
    )
    # The killed replica was producing some of the streams; each of those raised, through the
    # openai client, an error of the connection (not a timeout of ours), and well before the
    # hang guard.
    assert broken and whole, (len(broken), len(whole))
    for stream in broken:
        # openai wraps a broken connection as APIConnectionError (its own timeout as the
        # subclass APITimeoutError), a server-sent error event as APIError.
        assert isinstance(stream.error, openai.APIError), repr(stream.error)
        assert not isinstance(stream.error, openai.APITimeoutError), repr(stream.error)
        assert stream.ended - killed_at < REQUEST_TIMEOUT_S / 2
    for stream in whole:
        assert stream.finish_reason == "length", stream
    # The endpoint still serves.
    ok = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert ok.choices[0].message.content is not None
