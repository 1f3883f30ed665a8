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

Why the local path is a plain ASGI handler with an aiohttp client, with figures: see
forwarding.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import yarl
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .config import GatewayConfig, HostedRoute, LocalRoute
from .errors import json_error
from .forwarding import (
    OVERFLOW_HEADER,
    OVERFLOW_HEADER_BYTES,
    OVERFLOW_HEADER_VALUES,
    BodyTooLargeError,
    LocalStream,
    forwarded_raw_headers,
    needs_error_object,
    queue_full,
    read_body,
)
from .keys import RouteKeys, auth_error, bearer_token
from .metrics import GatewayMetrics
from .policy import Decision, ModelState, next_service_time, route_decision
from .provider import Provider
from .replicas import ReplicaSource

log = logging.getLogger("modeldeploy.gateway")

# A request that waits this long for a cold start is answered by Serve's own bounds first.
WAKE_TIMEOUT_S = 900.0


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
        sources = [r.api_keys for r in config.routes] + [h.api_keys for h in config.hosted]
        self.keys = RouteKeys(sources, config.key_reload_s)
        # The local path's client: aiohttp, created in `lifespan` (it must be made on the running
        # loop). It costs a fraction of httpx's CPU per streamed chunk (see the module docstring).
        self._local_client: aiohttp.ClientSession | None = None
        self._local_urls = {r.name: f"{r.base_url.rstrip('/')}/v1" for r in config.routes}
        self._provider = Provider()
        self._tasks: set[asyncio.Task[None]] = set()
        self.series = GatewayMetrics(registry or CollectorRegistry())
        self._starlette = Starlette(
            routes=[
                Route("/v1/models", self.list_models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
                Route("/{rest:path}", self.not_found, methods=["GET", "POST", "PUT", "DELETE"]),
            ],
            lifespan=self.lifespan,
        )

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
                self.series.ready.labels(name).set(-1 if count is None else count)

    async def poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval_s)
            await self.poll_once()

    # ---- endpoints ----

    async def list_models(self, request: Request) -> Response:
        token = bearer_token(request.headers.get("authorization"))
        now = int(time.time())
        visible = [
            {"id": r.name, "object": "model", "created": now, "owned_by": "modeldeploy"}
            for r in self.routes.values()
            if self.keys.accepts(r.api_keys, token)
        ] + [
            {"id": h.name, "object": "model", "created": now, "owned_by": "hosted"}
            for h in self.hosted.values()
            if self.keys.accepts(h.api_keys, token)
        ]
        if not visible and (self.routes or self.hosted):
            return auth_error(token)
        return JSONResponse({"object": "list", "data": visible})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(self, request: Request) -> Response:
        return Response(
            generate_latest(self.series.registry), media_type="text/plain; version=0.0.4"
        )

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
                body = await read_body(receive, limit)
        except TimeoutError:
            return json_error(
                408, f"The request body did not arrive within {timeout_s:g} s.", "request_timeout"
            )
        except BodyTooLargeError:
            return json_error(
                413, f"The request body is larger than {limit} bytes.", "request_too_large"
            )
        authorization = overflow = None
        for key, value in scope["headers"]:
            # The first of repeated headers, as Starlette's Headers.get reads it.
            if key == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif key == OVERFLOW_HEADER_BYTES and overflow is None:
                overflow = value.decode("latin-1")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            return json_error(400, "The request body must be a JSON object.", "invalid_json")
        name = payload.get("model")
        if not isinstance(name, str) or not name:
            return json_error(400, "`model` is required: the name of a model.", param="model")
        token = bearer_token(authorization)
        mode = (overflow or "allow").strip().lower()
        if mode not in OVERFLOW_HEADER_VALUES:
            return json_error(
                400,
                f"Header {OVERFLOW_HEADER} must be one of {', '.join(OVERFLOW_HEADER_VALUES)}.",
                param=OVERFLOW_HEADER,
            )
        path = scope["path"].removeprefix("/v1")
        route = self.routes.get(name)
        if route is not None:
            if not self.keys.accepts(route.api_keys, token):
                return auth_error(token)
            return await self._serve_local_route(
                route, path, scope, body, payload, mode == "forbid"
            )
        hosted = self.hosted.get(name)
        if hosted is not None:
            if not self.keys.accepts(hosted.api_keys, token):
                return auth_error(token)
            if mode == "forbid":
                return json_error(
                    400,
                    f"The model '{name}' is served only by a provider, and {OVERFLOW_HEADER}: "
                    "forbid allows no provider.",
                    param=OVERFLOW_HEADER,
                )
            self.series.count(name, "hosted", "Hosted")
            return await self._provider.forward(
                hosted.target, name, path, Request(scope), payload, "hosted"
            )
        if not self.keys.anyone_may_ask(token):
            return auth_error(token)
        return json_error(
            404, f"The model '{name}' does not exist.", code="model_not_found", param="model"
        )

    async def not_found(self, request: Request) -> Response:
        return json_error(404, f"No endpoint {request.method} {request.url.path}.")

    # ---- routing ----

    def decide(self, route: LocalRoute, forbidden: bool) -> Decision:
        """The policy's decision for one request of `route`."""
        return route_decision(route, self.state[route.name], forbidden)

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
            self.series.count(route.name, "rejected", decision.reason)
            return queue_full(route.name, str(decision.retry_after_s or 1))
        if decision.target == "overflow":
            assert route.overflow is not None
            if decision.reason == "ColdStart":
                self._wake(route)
            self.series.count(route.name, "overflow", decision.reason)
            return await self._provider.forward(
                route.overflow, route.name, path, Request(scope), payload, "overflow"
            )
        self.series.count(route.name, "local", decision.reason)
        started_at_once = decision.estimated_wait_s == 0
        return await self._to_local(route, path, scope, body, sample=started_at_once)

    async def _to_local(
        self, route: LocalRoute, path: str, scope: Scope, body: bytes, sample: bool
    ) -> ASGIAnswer:
        state = self.state[route.name]
        state.in_flight += 1
        gauge = self.series.in_flight_of(route.name)
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
            return json_error(
                503, f"The local replicas of '{route.name}' are unreachable.", "local_unavailable"
            )
        if upstream.status == 429:
            # Serve's own queue bound: same meaning, in OpenAI's shape.
            retry_after = upstream.headers.get("retry-after", "5")
            upstream.close()
            finish()
            self.series.count(route.name, "rejected", "QueueFull")
            return queue_full(route.name, retry_after)
        if needs_error_object(upstream.status, upstream.content_type):
            # Not the engine's own error nor HAProxy's (both JSON) but another proxy's page,
            # e.g. Serve's Python proxy (the other ingress modes) when no replica answers.
            status = upstream.status
            upstream.close()
            finish()
            log.warning("local replicas of %s: the serving proxy answered %d", route.name, status)
            return json_error(
                status,
                f"The local replicas of '{route.name}' failed: their proxy answered {status}.",
                "local_error",
            )
        return LocalStream(upstream, finish_ok, finish)

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


ASGIAnswer = Response | LocalStream
