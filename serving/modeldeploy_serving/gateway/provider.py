"""The overflow path: a request forwarded to a hosted provider with the provider's key (never the
client's), bounded waits to connect, and the answer streamed back as it arrives. httpx, whose
per-chunk cost does not matter next to a remote hop (see app.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .config import OverflowTarget
from .errors import json_error
from .forwarding import SERVED_BY_HEADER, forwarded_headers, response_headers
from .keys import read_provider_key

log = logging.getLogger("modeldeploy.gateway")

MIN_CONNECT_TIMEOUT_S = 1.0
PROVIDER_READ_TIMEOUT_S = 600.0


class Provider:
    """The client of the hosted providers, one connection pool for all of them."""

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64)
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def forward(
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
            return json_error(
                503,
                f"The provider API key of '{name}' cannot be read (spec.overflow.apiKeySecretRef).",
                "overflow_unavailable",
            )
        bound = max(MIN_CONNECT_TIMEOUT_S, target.max_queue_wait_s)
        content = json.dumps({**payload, "model": target.model}).encode()
        upstream_request = self._client.build_request(
            request.method,
            f"{target.base_url.rstrip('/')}{path}",
            headers=forwarded_headers(request.headers, key),
            content=content,
            params=request.query_params,
            timeout=httpx.Timeout(PROVIDER_READ_TIMEOUT_S, connect=bound, pool=bound),
        )
        try:
            upstream = await self._client.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("provider of %s unreachable: %s", name, type(exc).__name__)
            return json_error(
                503,
                f"The overflow provider of '{name}' did not answer within {bound:g} s "
                f"({type(exc).__name__}); retry later.",
                "overflow_unavailable",
                headers={SERVED_BY_HEADER: served_by},
            )
        if upstream.status_code in (401, 403):
            await upstream.aclose()
            return json_error(
                502,
                f"The overflow provider of '{name}' refused modeldeploy's provider key "
                "(spec.overflow.apiKeySecretRef).",
                "overflow_auth_failed",
                headers={SERVED_BY_HEADER: served_by},
            )
        return stream_response(upstream, served_by)


def stream_response(upstream: httpx.Response, served_by: str) -> StreamingResponse:
    """The provider's answer, streamed to the client as it arrives."""

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()

    return StreamingResponse(
        chunks(),
        status_code=upstream.status_code,
        headers=response_headers(upstream.headers, served_by),
    )
