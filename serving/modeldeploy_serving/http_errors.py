"""OpenAI error objects for the HTTP errors of routing: unknown path (404), wrong method (405).

vLLM's app answers its own errors as OpenAI error objects, but it registers its handler for
FastAPI's HTTPException only; Starlette's router raises Starlette's HTTPException for a path or
method it does not serve, which FastAPI answers as `{"detail": "Not Found"}`. An OpenAI client
then sees a body it cannot read as an error. `install` adds a handler for Starlette's class:
FastAPI's subclass keeps vLLM's handler (the most specific class wins).

`raw_json_response` is such an answer as whole bytes, for what answers before any app does
(HAProxy's error files, the gateway's header deadline).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any


def openai_error(status: int, message: str) -> dict[str, Any]:
    """The OpenAI error object for an HTTP status (pure)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {"error": {"message": message, "type": phrase, "param": None, "code": status}}


def raw_json_response(status: int, body: dict[str, Any]) -> bytes:
    """A whole HTTP/1.1 response with a JSON body that closes its connection, for a server to
    write as is: an HAProxy error file, an answer before any app runs (pure)."""
    content = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(content)}\r\n"
        "Cache-Control: no-cache\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode() + content


def install(app: Any) -> None:
    """Answer Starlette's HTTP errors in `app` (a FastAPI app) as OpenAI error objects."""
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code in (204, 304):
            # No body allowed.
            return Response(status_code=exc.status_code, headers=exc.headers)
        message = f"{exc.detail}: {request.method} {request.url.path}"
        return JSONResponse(
            openai_error(exc.status_code, message), status_code=exc.status_code, headers=exc.headers
        )

    app.add_exception_handler(HTTPException, handle)
    # vLLM's build_app returns the app with its middleware stack already built, and that stack
    # holds a copy of the handlers it was built with: rebuild it so the new handler is in it.
    app.middleware_stack = app.build_middleware_stack()
