"""HAProxy's own error answers on a model's endpoint, as OpenAI error objects.

A request that HAProxy ends itself would get one of two bodies an OpenAI client cannot read as
an error:
- HAProxy's HTML page, e.g. `408 Request Time-out` for a body that stops arriving;
- Ray's plain-text "Internal Server Error", for no replica left or a replica lost mid-request
  (Ray maps HAProxy's 502, 503 and 504 to 500).

`modeldeploy-haproxy` (modeldeploy_serving.haproxy_launcher) points HAProxy's `errorfile` lines
at the files written here. Left as HAProxy answers them: errors its HTTP/1 layer sends before a
request exists (a request line or headers that never complete or do not parse). HAProxy 2.8,
which Ray bundles, ignores `errorfile` for those (fixed in HAProxy 3.2, haproxy/haproxy#3032).
"""

from __future__ import annotations

from pathlib import Path

from modeldeploy_serving.http_errors import openai_error, raw_json_response

_NO_REPLICA = "No replica of the model could answer the request; retrying it may succeed."
# HAProxy status -> (status sent, message). 502, 503 and 504 keep Ray's 500, so an answer does
# not depend on which of them HAProxy met.
ERROR_ANSWERS: dict[int, tuple[int, str]] = {
    400: (400, "The request could not be read: it was malformed or incomplete."),
    408: (408, "The request did not arrive completely before the server's timeout."),
    500: (500, "The model's endpoint failed to complete the request; retrying it may succeed."),
    502: (500, _NO_REPLICA),
    503: (500, _NO_REPLICA),
    504: (500, _NO_REPLICA),
}


def error_file(status: int, message: str) -> bytes:
    """A whole HTTP response, as HAProxy's `errorfile` takes it, with an OpenAI error body."""
    return raw_json_response(status, openai_error(status, message))


def write_error_files(folder: Path) -> dict[int, str]:
    """An error file per HAProxy status in `folder`; their paths by status. A file already
    there with the same bytes (HAProxy is restarted at every reload) is left alone."""
    folder.mkdir(exist_ok=True)
    files = {}
    for status, (sent, message) in ERROR_ANSWERS.items():
        path = folder / f"{status}.http"
        answer = error_file(sent, message)
        if not path.is_file() or path.read_bytes() != answer:
            path.write_bytes(answer)
        files[status] = str(path)
    return files
