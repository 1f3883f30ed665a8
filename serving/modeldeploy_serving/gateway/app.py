"""The gateway: one OpenAI-compatible endpoint in front of every model of a namespace (or of a
local run), with API keys, routing by the request's `model`, and overflow to a provider.

Everything this module decides is decided elsewhere, purely: the route by name lookup, the key
check in `keys.py`, local vs overflow vs 429 in `policy.decide`. This module does the I/O: it
reads the replicas (`replicas.py`), forwards bytes, counts, and streams responses back as they
arrive (so streamed completions stay streamed through either path).

The local path adds one read of the request body, a JSON parse to find `model`, a dictionary
lookup and an HTTP hop over a kept-alive connection; the body is forwarded as received. Every
response carries `x-modeldeploy-served-by` (local, overflow or hosted); Prometheus counters on
/metrics count requests per model and server.

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
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import yarl
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .config import GatewayConfig, HostedRoute, LocalRoute, OverflowTarget, SecretSource
from .errors import error_body
from .keys import KeyStore, bearer_token, read_provider_key
from .policy import Decision, LocalLoad, OverflowRule, decide, next_service_time
from .replicas import ReplicaSource

log = logging.getLogger("modeldeploy.gateway")

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
_OVERFLOW_HEADER_BYTES = OVERFLOW_HEADER.encode()
# A request that waits this long for a cold start is answered by Serve's own bounds first.
WAKE_TIMEOUT_S = 900.0
MIN_CONNECT_TIMEOUT_S = 1.0
PROVIDER_READ_TIMEOUT_S = 600.0


@dataclass
class ModelState:
    """What the gateway knows about one local model between requests."""

    ready_replicas: int | None = None
    """None until read, and after a failed read: unknown."""
    in_flight: int = 0
    service_time_s: float | None = None
    waking: bool = False


def _json_error(
    status: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, param), status, headers=headers)


def _queue_full(model: str, retry_after: str) -> JSONResponse:
    return _json_error(
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


class Gateway:
    """The gateway's state and request handling; `asgi_app()` wraps it for an HTTP server."""

    def __init__(
        self,
        config: GatewayConfig,
        source: ReplicaSource,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.source = source
        self.clock = clock
        self.routes: dict[str, LocalRoute] = {r.name: r for r in config.routes}
        self.hosted: dict[str, HostedRoute] = {h.name: h for h in config.hosted}
        self.state: dict[str, ModelState] = {r.name: ModelState() for r in config.routes}
        self._keys: dict[SecretSource, KeyStore] = {}
        for source_ in [r.api_keys for r in config.routes] + [h.api_keys for h in config.hosted]:
            if source_ is not None and source_ not in self._keys:
                self._keys[source_] = KeyStore(source_, config.key_reload_s)
        # The local path's client: aiohttp, created in `lifespan` (it must be made on the running
        # loop). It costs a fraction of httpx's CPU per streamed chunk (see the module docstring).
        self._local_client: aiohttp.ClientSession | None = None
        self._local_urls = {r.name: f"{r.base_url.rstrip('/')}/v1" for r in config.routes}
        self._provider = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64)
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "modeldeploy_gateway_requests",
            "Requests per model by who served them (local, overflow, hosted, rejected).",
            ["model", "served_by", "reason"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "modeldeploy_gateway_in_flight",
            "Requests sent to a model's local replicas and not finished.",
            ["model"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "modeldeploy_gateway_ready_replicas",
            "Ready local replicas per model, as the gateway last read them; -1: unknown.",
            ["model"],
            registry=self.registry,
        )
        # Metric children by label values: `labels()` takes a lock and builds a tuple per call;
        # the label sets are few (models x outcomes), so each is looked up once.
        self._counts: dict[tuple[str, str, str], Any] = {}
        self._in_flight: dict[str, Any] = {}
        self._starlette = Starlette(
            routes=[
                Route("/v1/models", self.list_models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
                Route("/{rest:path}", self.not_found, methods=["GET", "POST", "PUT", "DELETE"]),
            ],
            lifespan=self.lifespan,
        )

    def _count(self, model: str, served_by: str, reason: str) -> None:
        key = (model, served_by, reason)
        child = self._counts.get(key)
        if child is None:
            child = self._counts[key] = self.requests.labels(model, served_by, reason)
        child.inc()

    def _in_flight_of(self, model: str) -> Any:
        child = self._in_flight.get(model)
        if child is None:
            child = self._in_flight[model] = self.in_flight.labels(model)
        return child

    @property
    def _local(self) -> aiohttp.ClientSession:
        if self._local_client is None:
            raise RuntimeError("the gateway's local client exists only while its app runs")
        return self._local_client

    # ---- replicas ----

    async def poll_once(self) -> None:
        apps = {r.app_name: r.name for r in self.routes.values()}
        try:
            counts = await self.source.ready_replicas(list(apps))
        except Exception as exc:  # a failed read keeps the last counts; the next poll retries
            log.warning("reading ready replicas failed: %s", type(exc).__name__)
            return
        for app_name, count in counts.items():
            if app_name in apps:
                name = apps[app_name]
                self.state[name].ready_replicas = count
                self.ready.labels(name).set(-1 if count is None else count)

    async def poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval_s)
            await self.poll_once()

    # ---- auth ----

    def _accepts(self, source: SecretSource | None, token: str | None) -> bool:
        return source is None or self._keys[source].accepts(token)

    def _anyone_may_ask(self, token: str | None) -> bool:
        """Whether this caller may learn that a model does not exist: some model is open to
        it. Otherwise an unknown name gets 401 like a known one, so names do not leak."""
        sources = [r.api_keys for r in self.routes.values()]
        sources += [h.api_keys for h in self.hosted.values()]
        return any(self._accepts(source, token) for source in sources)

    def _auth_error(self, token: str | None) -> JSONResponse:
        if token is None:
            message = "Missing API key: send it as `Authorization: Bearer KEY`."
        else:
            message = "Incorrect API key provided."
        return _json_error(401, message, code="invalid_api_key")

    # ---- endpoints ----

    async def list_models(self, request: Request) -> Response:
        token = bearer_token(request.headers.get("authorization"))
        now = int(time.time())
        visible = [
            {"id": r.name, "object": "model", "created": now, "owned_by": "modeldeploy"}
            for r in self.routes.values()
            if self._accepts(r.api_keys, token)
        ] + [
            {"id": h.name, "object": "model", "created": now, "owned_by": "hosted"}
            for h in self.hosted.values()
            if self._accepts(h.api_keys, token)
        ]
        if not visible and (self.routes or self.hosted):
            return self._auth_error(token)
        return JSONResponse({"object": "list", "data": visible})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type="text/plain; version=0.0.4")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app: POST /v1/* (the completions) by `proxy`, the rest by Starlette.

        The completions skip Starlette's routing, Request and Response layers: on the hot path
        they cost CPU per request for nothing the gateway needs (see the module docstring)."""
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"][:4] == "/v1/":
            answer = await self.proxy(scope, receive)
            await answer(scope, receive, send)
        else:
            await self._starlette(scope, receive, send)

    async def proxy(self, scope: Scope, receive: Receive) -> ASGIAnswer:
        limit, timeout_s = self.config.max_request_bytes, self.config.request_read_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                body = await _read_body(receive, limit)
        except TimeoutError:
            return _json_error(
                408, f"The request body did not arrive within {timeout_s:g} s.", "request_timeout"
            )
        except BodyTooLargeError:
            return _json_error(
                413, f"The request body is larger than {limit} bytes.", "request_too_large"
            )
        authorization = overflow = None
        for key, value in scope["headers"]:
            # The first of repeated headers, as Starlette's Headers.get reads it.
            if key == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif key == _OVERFLOW_HEADER_BYTES and overflow is None:
                overflow = value.decode("latin-1")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            return _json_error(400, "The request body must be a JSON object.", "invalid_json")
        name = payload.get("model")
        if not isinstance(name, str) or not name:
            return _json_error(400, "`model` is required: the name of a model.", param="model")
        token = bearer_token(authorization)
        mode = (overflow or "allow").strip().lower()
        if mode not in OVERFLOW_HEADER_VALUES:
            return _json_error(
                400,
                f"Header {OVERFLOW_HEADER} must be one of {', '.join(OVERFLOW_HEADER_VALUES)}.",
                param=OVERFLOW_HEADER,
            )
        path = scope["path"].removeprefix("/v1")
        route = self.routes.get(name)
        if route is not None:
            if not self._accepts(route.api_keys, token):
                return self._auth_error(token)
            return await self._serve_local_route(
                route, path, scope, body, payload, mode == "forbid"
            )
        hosted = self.hosted.get(name)
        if hosted is not None:
            if not self._accepts(hosted.api_keys, token):
                return self._auth_error(token)
            if mode == "forbid":
                return _json_error(
                    400,
                    f"The model '{name}' is served only by a provider, and {OVERFLOW_HEADER}: "
                    "forbid allows no provider.",
                    param=OVERFLOW_HEADER,
                )
            self._count(name, "hosted", "Hosted")
            return await self._to_provider(
                hosted.target, name, path, Request(scope), payload, "hosted"
            )
        if not self._anyone_may_ask(token):
            return self._auth_error(token)
        return _json_error(
            404, f"The model '{name}' does not exist.", code="model_not_found", param="model"
        )

    async def not_found(self, request: Request) -> Response:
        return _json_error(404, f"No endpoint {request.method} {request.url.path}.")

    # ---- routing ----

    def decide(self, route: LocalRoute, forbidden: bool) -> Decision:
        """The policy's decision for one request of `route`.

        Replicas that could not be read count as one ready replica: the request then goes
        local, where Serve holds it if need be. Reading "unknown" as "cold" would send every
        request of a healthy model to the provider while its dashboard is unreachable.
        """
        state = self.state[route.name]
        ready = 1 if state.ready_replicas is None else state.ready_replicas
        load = LocalLoad(
            ready_replicas=ready,
            in_flight=state.in_flight,
            slots_per_replica=route.slots_per_replica,
            service_time_s=state.service_time_s,
            max_queued_requests=route.waiting_room(ready),
        )
        rule = None
        if route.overflow is not None:
            rule = OverflowRule(route.overflow.when, route.overflow.max_queue_wait_s)
        return decide(load, rule, route.local_only, forbidden)

    async def _serve_local_route(
        self,
        route: LocalRoute,
        path: str,
        scope: Scope,
        body: bytes,
        payload: dict[str, Any],
        forbidden: bool,
    ) -> ASGIAnswer:
        decision = self.decide(route, forbidden)
        if decision.target == "reject":
            self._count(route.name, "rejected", decision.reason)
            return _queue_full(route.name, str(decision.retry_after_s or 1))
        if decision.target == "overflow":
            assert route.overflow is not None
            if decision.reason == "ColdStart":
                self._wake(route)
            self._count(route.name, "overflow", decision.reason)
            return await self._to_provider(
                route.overflow, route.name, path, Request(scope), payload, "overflow"
            )
        self._count(route.name, "local", decision.reason)
        started_at_once = decision.estimated_wait_s == 0
        return await self._to_local(route, path, scope, body, sample=started_at_once)

    async def _to_local(
        self, route: LocalRoute, path: str, scope: Scope, body: bytes, sample: bool
    ) -> ASGIAnswer:
        state = self.state[route.name]
        state.in_flight += 1
        gauge = self._in_flight_of(route.name)
        gauge.inc()
        started = self.clock()
        done = False

        def finish() -> None:
            nonlocal done
            if done:
                return
            done = True
            state.in_flight -= 1
            gauge.dec()

        def finish_ok() -> None:
            if sample and not done:
                state.service_time_s = next_service_time(
                    state.service_time_s, self.clock() - started
                )
            finish()

        url = self._local_urls[route.name] + path
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        try:
            upstream = await self._local.request(
                scope["method"],
                # As received: the query string is forwarded exactly, not re-encoded.
                yarl.URL(url, encoded=True),
                headers=forwarded_raw_headers(scope["headers"]),
                data=body,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            finish()
            log.warning("local replicas of %s unreachable: %s", route.name, type(exc).__name__)
            return _json_error(
                503, f"The local replicas of '{route.name}' are unreachable.", "local_unavailable"
            )
        if upstream.status == 429:
            # Serve's own queue bound: same meaning, in OpenAI's shape.
            retry_after = upstream.headers.get("retry-after", "5")
            upstream.close()
            finish()
            self._count(route.name, "rejected", "QueueFull")
            return _queue_full(route.name, retry_after)
        if needs_error_object(upstream.status, upstream.content_type):
            # Not the engine's own error nor HAProxy's (both JSON) but another proxy's page,
            # e.g. Serve's Python proxy (the other ingress modes) when no replica answers.
            status = upstream.status
            upstream.close()
            finish()
            log.warning("local replicas of %s: the serving proxy answered %d", route.name, status)
            return _json_error(
                status,
                f"The local replicas of '{route.name}' failed: their proxy answered {status}.",
                "local_error",
            )
        return LocalStream(upstream, finish_ok, finish)

    async def _to_provider(
        self,
        target: OverflowTarget,
        name: str,
        path: str,
        request: Request,
        payload: dict[str, Any],
        served_by: str,
    ) -> Response:
        try:
            key = read_provider_key(target.api_key)
        except LookupError:
            log.warning("provider key of %s cannot be read", name)
            return _json_error(
                503,
                f"The provider API key of '{name}' cannot be read (spec.overflow.apiKeySecretRef).",
                "overflow_unavailable",
            )
        bound = max(MIN_CONNECT_TIMEOUT_S, target.max_queue_wait_s)
        content = json.dumps({**payload, "model": target.model}).encode()
        upstream_request = self._provider.build_request(
            request.method,
            f"{target.base_url.rstrip('/')}{path}",
            headers=forwarded_headers(request.headers, key),
            content=content,
            params=request.query_params,
            timeout=httpx.Timeout(PROVIDER_READ_TIMEOUT_S, connect=bound, pool=bound),
        )
        try:
            upstream = await self._provider.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("provider of %s unreachable: %s", name, type(exc).__name__)
            return _json_error(
                503,
                f"The overflow provider of '{name}' did not answer within {bound:g} s "
                f"({type(exc).__name__}); retry later.",
                "overflow_unavailable",
                headers={SERVED_BY_HEADER: served_by},
            )
        if upstream.status_code in (401, 403):
            await upstream.aclose()
            return _json_error(
                502,
                f"The overflow provider of '{name}' refused modeldeploy's provider key "
                "(spec.overflow.apiKeySecretRef).",
                "overflow_auth_failed",
                headers={SERVED_BY_HEADER: served_by},
            )
        return self._stream(upstream, served_by, lambda: None, lambda: None)

    def _stream(
        self,
        upstream: httpx.Response,
        served_by: str,
        on_complete: Callable[[], None],
        on_end: Callable[[], None],
    ) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
                on_complete()
            finally:
                on_end()
                await upstream.aclose()

        return StreamingResponse(
            chunks(),
            status_code=upstream.status_code,
            headers=response_headers(upstream.headers, served_by),
        )

    def _wake(self, route: LocalRoute) -> None:
        """Start the local replicas of a model at zero, without sending them the request.

        A request that overflows never reaches Serve, so Serve would never see demand and the
        pool would stay at zero: one light request (the model list) makes Serve start a
        replica. One at a time per model.
        """
        state = self.state[route.name]
        if state.waking:
            return
        state.waking = True

        async def wake() -> None:
            try:
                async with self._local.get(
                    f"{self._local_urls[route.name]}/models",
                    timeout=aiohttp.ClientTimeout(total=WAKE_TIMEOUT_S),
                ) as response:
                    await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("waking %s failed: %s", route.name, type(exc).__name__)
            finally:
                state.waking = False

        task = asyncio.get_running_loop().create_task(wake())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- lifecycle ----

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._local_client = aiohttp.ClientSession(
            # No pool limit (Serve bounds the queue); connect bounded, the rest as long as the
            # completion takes. Raw bytes: nothing is decompressed or recoded on the way.
            # Idle connections are dropped after 4 s: under uvicorn's default keep-alive (5 s)
            # and Serve's ingresses' own, so the upstream never closes a connection just as the
            # pool hands it out (httpx, before, kept them 5 s).
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),
        )
        await self.poll_once()
        poller = asyncio.get_running_loop().create_task(self.poll_forever())
        try:
            yield
        finally:
            poller.cancel()
            for task in list(self._tasks):
                task.cancel()
            await self._local.close()
            self._local_client = None
            await self._provider.aclose()
            closer = getattr(self.source, "aclose", None)
            if closer is not None:
                await closer()

    def asgi_app(self) -> Gateway:
        """The ASGI app to serve (the gateway itself; see `__call__`)."""
        return self


class BodyTooLargeError(Exception):
    """A request body beyond `GatewayConfig.max_request_bytes`."""


async def _read_body(receive: Receive, limit: int) -> bytes:
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


async def _until_disconnect(receive: Receive) -> None:
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

        watcher = asyncio.get_running_loop().create_task(_until_disconnect(receive))
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


ASGIAnswer = Response | LocalStream
