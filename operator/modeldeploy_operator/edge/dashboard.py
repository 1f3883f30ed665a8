"""The Ray dashboard's Serve REST API: a small client interface and its HTTP implementation
(the I/O edge; decide/serve_status.py reads what it fetches).

Where the operator runs outside the cluster (development, the e2e tier), the dashboard of each
ModelDeployment's head is reached through `dashboard_url_template` instead of the head Service
(names.DEFAULT_DASHBOARD_URL).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

SERVE_APPLICATIONS_PATH = "/api/serve/applications/"
LOGS_PATH = "/api/v0/logs/file"


class DashboardUnavailable(Exception):
    """The dashboard did not answer, or answered with an error."""


class ServeDashboard(Protocol):
    def get_applications(self) -> dict[str, Any]: ...

    def put_applications(self, config: dict[str, Any]) -> None: ...

    def get_metrics(self) -> str: ...

    def get_log(self, query: dict[str, str]) -> str: ...


@dataclass(frozen=True)
class HttpServeDashboard:
    """The real client: JSON over HTTP with short timeouts, errors as DashboardUnavailable."""

    base_url: str
    metrics_url: str
    timeout_s: float = 10.0

    def _request(
        self,
        method: str,
        body: dict[str, Any] | None = None,
        url: str | None = None,
        timeout_s: float | None = None,
    ) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            url or self.base_url.rstrip("/") + SERVE_APPLICATIONS_PATH,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s or self.timeout_s) as response:
                payload: bytes = response.read()
                return payload
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise DashboardUnavailable(
                f"{method} {self.base_url}: HTTP {exc.code}: {detail}"
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DashboardUnavailable(f"{method} {self.base_url}: {reason}") from None

    def get_applications(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self._request("GET") or b"{}")
        return loaded

    def put_applications(self, config: dict[str, Any]) -> None:
        # The first submission also starts Serve's controller and proxies: give it longer.
        self._request("PUT", config, timeout_s=max(self.timeout_s, 60.0))

    def get_metrics(self) -> str:
        """The head node's Prometheus text (Serve controller metrics, our policy's gauge)."""
        return self._request("GET", url=self.metrics_url).decode(errors="replace")

    def get_log(self, query: dict[str, str]) -> str:
        """A log file's last lines through Ray's log API (`query`: node_id and filename, or
        actor_id and suffix, and lines): the head's dashboard fetches it from the node that
        holds it, so a replica's download and verification can be read from any node."""
        url = f"{self.base_url.rstrip('/')}{LOGS_PATH}?{urllib.parse.urlencode(query)}"
        return self._request("GET", url=url).decode(errors="replace")
