"""The gateway's forwarding parts: which headers cross a hop, OpenAI error answers, reading a
bounded request body, and streaming the local replicas' answer back as a plain ASGI response.

Why the local path is a plain ASGI handler with an aiohttp client (the provider path and the
small endpoints stay on Starlette and httpx): on the 2-core development machine every CPU
millisecond of the gateway is taken from the engine, and a streamed completion crosses the
gateway as ~33 chunks. bench/overhead/gateway_cpu.py measures the gateway process's CPU per
streamed request alone (a 33-chunk SSE upstream, no engine); on that machine, at concurrency
1 / 8 / 32:
- before (Starlette Request + StreamingResponse, httpx, asyncio + h11): 7.7-8.2 / 3.3-3.7 /
  4.4-5.4 ms;
- uvloop + httptools alone: 7.7 / 3.5 / 4.8 ms (the forwarder, not the server, was the cost);
- aiohttp instead of httpx, still through Starlette's StreamingResponse: 3.7 / 1.2 / 0.77 ms
  (httpx's per-chunk layers were most of it);
- aiohttp with this plain ASGI handler, uvloop + httptools (as shipped): 3.5-3.6 / 1.0-1.1 /
  0.70-0.77 ms. The handler saves Starlette's routing, Request, Headers and the anyio task
  group StreamingResponse starts per request to watch for disconnects (about 10-15 %); one
  asyncio task does that watching here.
The provider path is one remote hop whose latency dwarfs the forwarder's CPU; it keeps httpx
and its tested connect/pool bounds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping

import aiohttp
import httpx
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from .errors import json_error

SERVED_BY_HEADER = "x-modeldeploy-served-by"
OVERFLOW_HEADER = "x-modeldeploy-overflow"
OVERFLOW_HEADER_VALUES = ("allow", "forbid")
# Headers of one hop only (RFC 9110 7.6.1), plus those the server recomputes.
_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "date",
    "server",
}
_HOP_HEADERS_BYTES = frozenset(h.encode() for h in _HOP_HEADERS)
# Dropped from what goes upstream: the client's key (never forwarded), the gateway's own header,
# and accept-encoding: the upstream then never compresses, so the raw bytes forwarded are what
# the client can read whatever it asked for.
_NOT_FORWARDED = frozenset(_HOP_HEADERS | {"authorization", OVERFLOW_HEADER, "accept-encoding"})
_NOT_FORWARDED_BYTES = frozenset(h.encode() for h in _NOT_FORWARDED)
_SERVED_BY_LOCAL = (SERVED_BY_HEADER.encode(), b"local")
OVERFLOW_HEADER_BYTES = OVERFLOW_HEADER.encode()


def queue_full(model: str, retry_after: str) -> JSONResponse:
    return json_error(
        429,
        f"The local replicas of '{model}' are busy and their queue is full; "
        f"retry after {retry_after} s.",
        code="queue_full",
        headers={"retry-after": retry_after},
    )


def needs_error_object(status: int, content_type: str) -> bool:
    """Whether a local response must be replaced by an OpenAI error object: an error that is
    not JSON, so an OpenAI client could not read it as an error."""
    return status >= 400 and content_type != "application/json"


def forwarded_headers(headers: Mapping[str, str], api_key: str | None) -> dict[str, str]:
    """Request headers to send upstream: the client's key never leaves; a provider's is added."""
    out = {k: v for k, v in headers.items() if k.lower() not in _NOT_FORWARDED}
    if api_key is not None:
        out["authorization"] = f"Bearer {api_key}"
    return out


def forwarded_raw_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """`forwarded_headers` for the local path, from the ASGI scope's raw (lower-case) pairs,
    without a provider key: one list, no Starlette Headers object, per request."""
    return [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in headers
        if k not in _NOT_FORWARDED_BYTES
    ]


def local_response_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`response_headers` for the local path: the upstream's raw pairs as ASGI wants them."""
    out = [(k.lower(), v) for k, v in raw if k.lower() not in _HOP_HEADERS_BYTES]
    out.append(_SERVED_BY_LOCAL)
    return out


def response_headers(headers: httpx.Headers, served_by: str) -> dict[str, str]:
    out = {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
    out[SERVED_BY_HEADER] = served_by
    return out


class BodyTooLargeError(Exception):
    """A request body beyond `GatewayConfig.max_request_bytes`."""


async def read_body(receive: Receive, limit: int) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    size = len(body)
    if size > limit:
        raise BodyTooLargeError
    if not message.get("more_body", False):
        return body  # the common case: the whole request in one message
    parts = [body]
    while message.get("more_body", False):
        message = await receive()
        part = message.get("body", b"")
        size += len(part)
        # Counted as it arrives: nothing past the limit is held in memory.
        if size > limit:
            raise BodyTooLargeError
        parts.append(part)
    return b"".join(parts)


async def until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class LocalStream:
    """The local replicas' response, streamed to the client chunk by chunk as it arrives.

    A plain ASGI answer instead of Starlette's StreamingResponse, which runs an anyio task
    group per request; one asyncio task here watches for the client's disconnect and cancels
    the stream, which closes the upstream connection, so the engine stops generating, as
    before. A complete response returns its connection to the pool.
    """

    def __init__(
        self,
        upstream: aiohttp.ClientResponse,
        on_complete: Callable[[], None],
        on_end: Callable[[], None],
    ) -> None:
        self.upstream = upstream
        self.on_complete = on_complete
        self.on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        upstream = self.upstream
        streaming = asyncio.current_task()
        assert streaming is not None
        disconnected = False

        def on_disconnect(watcher: asyncio.Task[None]) -> None:
            nonlocal disconnected
            if not watcher.cancelled() and watcher.exception() is None:
                disconnected = True
                streaming.cancel()

        watcher = asyncio.get_running_loop().create_task(until_disconnect(receive))
        watcher.add_done_callback(on_disconnect)
        complete = False
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": upstream.status,
                    "headers": local_response_headers(upstream.raw_headers),
                }
            )
            async for chunk in upstream.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            complete = True
            self.on_complete()
            # Before the last send: once the response is complete, receive() reports a
            # disconnect, which must not cancel this task.
            watcher.remove_done_callback(on_disconnect)
            watcher.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if disconnected and streaming.uncancel() == 0:
                return  # the client left; nothing more to send
            raise
        finally:
            watcher.remove_done_callback(on_disconnect)
            watcher.cancel()
            self.on_end()
            if complete:
                upstream.release()
            else:
                upstream.close()
