"""Error responses in OpenAI's shape, so the official clients raise their usual exceptions.

`{"error": {"message", "type", "param", "code"}}` with the status codes OpenAI uses: 400 for a bad
request, 401 for a missing or wrong key, 404 for an unknown model, 408 for a body that stalls, 413
for one too large, 429 with Retry-After, 502/503 when the upstream fails. Messages name the field
or header at fault and never carry a key: they are built only from the request's model name,
settings, and fixed text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "bad_gateway",
    503: "service_unavailable",
}


def error_body(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The JSON body of an OpenAI error response with this status (pure)."""
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(status, "server_error"),
            "param": param,
            "code": code,
        }
    }


def json_error(
    status: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An OpenAI error response."""
    return JSONResponse(error_body(status, message, code, param), status, headers=headers)
