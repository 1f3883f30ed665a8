"""How many replicas of each local model are ready: read from Ray Serve's own view.

Three real sources behind one small interface:
- `ServeStatusSource`: `serve.status()` of the Serve instance this process is connected to;
- `FileSource`: counts another process publishes in a small JSON file (the local run: the
  process that started Ray reads `serve.status()` and writes them with `write_counts`, and the
  gateway runs in a process of its own, which needs no Ray);
- `DashboardSource`: the Serve REST API of each model's Ray dashboard (in the cluster, where the
  gateway is a Deployment and each ModelDeployment has its own Ray head).

Replicas are read from the control plane, never by probing the model's endpoint: a probe is a
request, and a request to an application at zero replicas starts a cold start.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx

SERVE_APPLICATIONS_PATH = "/api/serve/applications/"


class ReplicaSource(Protocol):
    async def ready_replicas(self, app_names: Sequence[str]) -> dict[str, int | None]:
        """Ready replicas per application; None for one that could not be read this time."""
        ...


def running_replicas(instance: Mapping[str, Any], app_name: str) -> int:
    """RUNNING replicas of `app_name` in a dashboard's /api/serve/applications/ reply (pure)."""
    app = (instance.get("applications") or {}).get(app_name) or {}
    total = 0
    for deployment in (app.get("deployments") or {}).values():
        replicas = deployment.get("replicas") or []
        total += sum(1 for r in replicas if r.get("state") == "RUNNING")
    return total


class ServeStatusSource:
    """`serve.status()` in this process (which must be connected to Ray)."""

    async def ready_replicas(self, app_names: Sequence[str]) -> dict[str, int | None]:
        return await asyncio.to_thread(self.read, list(app_names))

    @staticmethod
    def read(app_names: list[str]) -> dict[str, int | None]:
        from ray import serve

        status = serve.status()
        found: dict[str, int | None] = {}
        for name in app_names:
            app = status.applications.get(name)
            if app is None:
                found[name] = 0
                continue
            found[name] = sum(
                count
                for d in app.deployments.values()
                for state, count in d.replica_states.items()
                if state == "RUNNING"
            )
        return found


def counts_from_json(text: str, app_names: Sequence[str]) -> dict[str, int | None]:
    """Counts of `app_names` in a file `write_counts` wrote (pure); None where not readable."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    counts = data if isinstance(data, dict) else {}
    found: dict[str, int | None] = {}
    for name in app_names:
        value = counts.get(name)
        found[name] = value if isinstance(value, int) and not isinstance(value, bool) else None
    return found


def write_counts(path: Path, counts: Mapping[str, int | None]) -> None:
    """Replace `path` with `counts` at once (write, then rename): a reader never sees half."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(dict(counts)), encoding="utf-8")
    os.replace(partial, path)


class FileSource:
    """Counts published in a file by the process that can read Serve (see `write_counts`).

    A file older than `max_age_s` reads as unknown: its writer has stopped or hangs, and stale
    counts would steer requests on a state that no longer holds."""

    def __init__(self, path: Path, max_age_s: float) -> None:
        self.path = path
        self.max_age_s = max_age_s

    async def ready_replicas(self, app_names: Sequence[str]) -> dict[str, int | None]:
        try:
            if time.time() - self.path.stat().st_mtime > self.max_age_s:
                return dict.fromkeys(app_names)
            text = self.path.read_text(encoding="utf-8")
        except OSError:
            return dict.fromkeys(app_names)
        return counts_from_json(text, app_names)


class DashboardSource:
    """Each application's Ray dashboard, over HTTP, with a short timeout."""

    def __init__(self, dashboards: Mapping[str, str], timeout_s: float = 2.0) -> None:
        self.dashboards = dict(dashboards)
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def ready_replicas(self, app_names: Sequence[str]) -> dict[str, int | None]:
        counts = await asyncio.gather(*(self._one(name) for name in app_names))
        return dict(zip(app_names, counts, strict=True))

    async def _one(self, app_name: str) -> int | None:
        url = self.dashboards.get(app_name)
        if url is None:
            return None
        try:
            response = await self._client.get(url.rstrip("/") + SERVE_APPLICATIONS_PATH)
            response.raise_for_status()
            return running_replicas(response.json(), app_name)
        except (httpx.HTTPError, ValueError):
            return None

    async def aclose(self) -> None:
        await self._client.aclose()


class CombinedSource:
    """Local-run applications from `local` (serve.status() by default), the others from their
    dashboards."""

    def __init__(
        self,
        in_process: Sequence[str],
        dashboards: Mapping[str, str],
        local: ReplicaSource | None = None,
    ) -> None:
        self.in_process = set(in_process)
        self.serve = local or ServeStatusSource()
        self.dashboard = DashboardSource(dashboards)

    async def ready_replicas(self, app_names: Sequence[str]) -> dict[str, int | None]:
        local = [n for n in app_names if n in self.in_process]
        remote = [n for n in app_names if n not in self.in_process]
        found: dict[str, int | None] = {}
        if local:
            found.update(await self.serve.ready_replicas(local))
        if remote:
            found.update(await self.dashboard.ready_replicas(remote))
        return found

    async def aclose(self) -> None:
        await self.dashboard.aclose()
