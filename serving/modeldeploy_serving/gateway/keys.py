"""API keys: reading them from their source, and checking a request's Bearer token.

Keys are compared as SHA-256 digests held in a set: the lookup's timing then depends on digests,
which say nothing about the keys. The store never logs, formats or returns a key; reading
problems are reported by source (file path or variable name) only.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from starlette.responses import JSONResponse

from .config import SecretSource
from .errors import json_error


def parse_keys(text: str) -> frozenset[str]:
    """Keys in a Secret value: one per line; blank lines and lines starting with # ignored."""
    keys = (line.strip() for line in text.splitlines())
    return frozenset(k for k in keys if k and not k.startswith("#"))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, None if absent or another scheme."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def read_secret(source: SecretSource) -> str:
    """The value at `source`; raises LookupError naming the source (never the value)."""
    if source.env is not None:
        value = os.environ.get(source.env)
        if value is None:
            raise LookupError(f"environment variable {source.env} is not set")
        return value
    assert source.file is not None
    try:
        return Path(source.file).read_text(encoding="utf-8")
    except OSError as exc:
        raise LookupError(f"cannot read {source.file}: {exc.strerror}") from None


class KeyStore:
    """The accepted keys of one source, read again every `reload_s` (a rotated Secret)."""

    def __init__(
        self,
        source: SecretSource,
        reload_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.reload_s = reload_s
        self._clock = clock
        self._digests: frozenset[bytes] = frozenset()
        self._loaded_at: float | None = None
        self.load()

    def load(self) -> None:
        """Read the keys now. A source that cannot be read accepts no key (fail closed)."""
        try:
            keys = parse_keys(read_secret(self.source))
        except LookupError:
            keys = frozenset()
        self._digests = frozenset(digest(k) for k in keys)
        self._loaded_at = self._clock()

    @property
    def count(self) -> int:
        return len(self._digests)

    def accepts(self, token: str | None) -> bool:
        if self._loaded_at is None or self._clock() - self._loaded_at >= self.reload_s:
            self.load()
        return token is not None and digest(token) in self._digests


def read_provider_key(source: SecretSource | None) -> str | None:
    """A provider's API key (the first key line of its source), None when there is none."""
    if source is None:
        return None
    lines = (line.strip() for line in read_secret(source).splitlines())
    return next((k for k in lines if k and not k.startswith("#")), None)


class RouteKeys:
    """The key stores of a gateway's routes, one per distinct source (routes may share one)."""

    def __init__(self, sources: Iterable[SecretSource | None], reload_s: float) -> None:
        self._sources = list(sources)
        self._stores = {s: KeyStore(s, reload_s) for s in self._sources if s is not None}

    def accepts(self, source: SecretSource | None, token: str | None) -> bool:
        """Whether `token` may use a route guarded by `source` (None: an open route)."""
        return source is None or self._stores[source].accepts(token)

    def anyone_may_ask(self, token: str | None) -> bool:
        """Whether this caller may learn that a model does not exist: some route is open to
        it. Otherwise an unknown name gets 401 like a known one, so names do not leak."""
        return any(self.accepts(source, token) for source in self._sources)


def auth_error(token: str | None) -> JSONResponse:
    """The OpenAI error answer for a missing or wrong key (never naming the key)."""
    if token is None:
        message = "Missing API key: send it as `Authorization: Bearer KEY`."
    else:
        message = "Incorrect API key provided."
    return json_error(401, message, "invalid_api_key")
