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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

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


def forwarded_headers(headers: Mapping[str, str], api_key: str | None) -> dict[str, str]:
    """Request headers to send upstream: the client's key never leaves; a provider's is added."""
    drop = _HOP_HEADERS | {"authorization", OVERFLOW_HEADER, "accept-encoding"}
    out = {k: v for k, v in headers.items() if k.lower() not in drop}
    if api_key is not None:
        out["authorization"] = f"Bearer {api_key}"
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
        self._local = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=10.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
        )
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

    async def proxy(self, request: Request) -> Response:
        body = await request.body()
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            return _json_error(400, "The request body must be a JSON object.", "invalid_json")
        name = payload.get("model")
        if not isinstance(name, str) or not name:
            return _json_error(400, "`model` is required: the name of a model.", param="model")
        token = bearer_token(request.headers.get("authorization"))
        mode = (request.headers.get(OVERFLOW_HEADER) or "allow").strip().lower()
        if mode not in OVERFLOW_HEADER_VALUES:
            return _json_error(
                400,
                f"Header {OVERFLOW_HEADER} must be one of {', '.join(OVERFLOW_HEADER_VALUES)}.",
                param=OVERFLOW_HEADER,
            )
        path = request.url.path.removeprefix("/v1")
        route = self.routes.get(name)
        if route is not None:
            if not self._accepts(route.api_keys, token):
                return self._auth_error(token)
            return await self._serve_local_route(
                route, path, request, body, payload, mode == "forbid"
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
            self.requests.labels(name, "hosted", "Hosted").inc()
            return await self._to_provider(hosted.target, name, path, request, payload, "hosted")
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
        request: Request,
        body: bytes,
        payload: dict[str, Any],
        forbidden: bool,
    ) -> Response:
        decision = self.decide(route, forbidden)
        if decision.target == "reject":
            self.requests.labels(route.name, "rejected", decision.reason).inc()
            return _queue_full(route.name, str(decision.retry_after_s or 1))
        if decision.target == "overflow":
            assert route.overflow is not None
            if decision.reason == "ColdStart":
                self._wake(route)
            self.requests.labels(route.name, "overflow", decision.reason).inc()
            return await self._to_provider(
                route.overflow, route.name, path, request, payload, "overflow"
            )
        self.requests.labels(route.name, "local", decision.reason).inc()
        started_at_once = decision.estimated_wait_s == 0
        return await self._to_local(route, path, request, body, sample=started_at_once)

    async def _to_local(
        self, route: LocalRoute, path: str, request: Request, body: bytes, sample: bool
    ) -> Response:
        state = self.state[route.name]
        state.in_flight += 1
        self.in_flight.labels(route.name).inc()
        started = self.clock()
        done = False

        def finish() -> None:
            nonlocal done
            if done:
                return
            done = True
            state.in_flight -= 1
            self.in_flight.labels(route.name).dec()

        def finish_ok() -> None:
            if sample and not done:
                state.service_time_s = next_service_time(
                    state.service_time_s, self.clock() - started
                )
            finish()

        upstream_request = self._local.build_request(
            request.method,
            f"{route.base_url.rstrip('/')}/v1{path}",
            headers=forwarded_headers(request.headers, None),
            content=body,
            params=request.query_params,
        )
        try:
            upstream = await self._local.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            finish()
            log.warning("local replicas of %s unreachable: %s", route.name, type(exc).__name__)
            return _json_error(
                503, f"The local replicas of '{route.name}' are unreachable.", "local_unavailable"
            )
        if upstream.status_code == 429:
            # Serve's own queue bound: same meaning, in OpenAI's shape.
            await upstream.aclose()
            finish()
            self.requests.labels(route.name, "rejected", "QueueFull").inc()
            return _queue_full(route.name, upstream.headers.get("retry-after", "5"))
        return self._stream(upstream, "local", finish_ok, finish)

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
                await self._local.get(
                    f"{route.base_url.rstrip('/')}/v1/models", timeout=WAKE_TIMEOUT_S
                )
            except httpx.HTTPError as exc:
                log.warning("waking %s failed: %s", route.name, type(exc).__name__)
            finally:
                state.waking = False

        task = asyncio.get_running_loop().create_task(wake())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- lifecycle ----

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.poll_once()
        poller = asyncio.get_running_loop().create_task(self.poll_forever())
        try:
            yield
        finally:
            poller.cancel()
            for task in list(self._tasks):
                task.cancel()
            await self._local.aclose()
            await self._provider.aclose()
            closer = getattr(self.source, "aclose", None)
            if closer is not None:
                await closer()

    def asgi_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/models", self.list_models, methods=["GET"]),
                Route("/v1/{rest:path}", self.proxy, methods=["POST"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
                Route("/{rest:path}", self.not_found, methods=["GET", "POST", "PUT", "DELETE"]),
            ],
            lifespan=self.lifespan,
        )
