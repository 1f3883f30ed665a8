"""A deadline for each request's line and headers on the gateway's HTTP server.

uvicorn sets none. Its keep-alive timer runs only between two requests, and any byte received
cancels it. So a client that opens a connection and sends nothing, or sends part of its headers
and stalls, would hold that connection for good (slowloris). The body has its own deadline in
the app (`GatewayConfig.request_read_timeout_s`); this is the same deadline for what comes
before it. A client that misses it after sending part of a request gets a 408 OpenAI error
object; a connection that sent nothing is closed without one, as an idle keep-alive connection
is, so that a client about to use a pooled connection does not read a 408 for its request.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..http_errors import raw_json_response
from .errors import error_body


def timeout_response(timeout_s: float) -> bytes:
    """The whole 408 response to a request whose headers did not arrive in time (pure)."""
    message = f"The request line and headers did not arrive within {timeout_s:g} s."
    return raw_json_response(408, error_body(408, message, "request_timeout"))


def header_deadline_protocol(timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a `timeout_s` deadline on each request's line and
    headers, counted from the connection's start or the request's first byte."""
    response = timeout_response(timeout_s)

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _request_begun = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._request_begun = True
            if self._deadline is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            self._request_begun = False
            super().on_headers_complete()

        def _arm(self) -> None:
            self._deadline = self.loop.call_later(timeout_s, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                # A pipelined request stalled behind one still answering: close after it.
                self.cycle.keep_alive = False
                return
            if self._request_begun:
                self.transport.write(response)
            self.transport.close()

    return HeaderDeadlineProtocol
