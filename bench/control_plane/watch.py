"""When did each child appear, and when did each ModelDeployment get its status: from watches.

One streaming watch per kind (Pods, Services, ModelDeployments) in the benchmark's namespace,
each in a thread, records the monotonic time an event is read. A watch costs the apiserver
nothing per check, unlike polling, so the measurement does not slow down what it measures.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cluster.localcluster import LocalCluster

from modeldeploy_operator.common import names

MD_PATH = "/apis/modeldeploy.dev/v1alpha1/namespaces/{ns}/modeldeployments"
POD_PATH = "/api/v1/namespaces/{ns}/pods"
SERVICE_PATH = "/api/v1/namespaces/{ns}/services"

Handler = Callable[[str, dict[str, Any], float], None]


def expected_children(name: str, workers: int) -> tuple[list[str], list[str]]:
    """Pod and Service names the operator creates for one ModelDeployment."""
    pods = [names.head_pod(name)] + [names.worker_pod(name, i) for i in range(workers)]
    services = [names.head_service(name), names.endpoint_service(name)]
    return pods, services


def _lines(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """Whole lines of a streamed body, however its chunks cut them (readline does not join
    a line split across chunks)."""
    pending = b""
    while chunk := response.read1(65536):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from (line for line in lines if line.strip())


class StreamingWatch(threading.Thread):
    """`GET path?watch=1` from a list's resourceVersion on; every event goes to `handler`."""

    def __init__(self, cluster: LocalCluster, path: str, handler: Handler) -> None:
        super().__init__(name=f"watch {path}", daemon=True)
        self.cluster = cluster
        self.path = path
        self.handler = handler
        self.ready = threading.Event()
        self._stopped = threading.Event()
        self._conn: http.client.HTTPSConnection | None = None

    def _connect(self) -> http.client.HTTPSConnection:
        url = urllib.parse.urlsplit(self.cluster.server)
        context = ssl.create_default_context(cafile=str(self.cluster.ca_file))
        return http.client.HTTPSConnection(url.hostname or "", url.port, context=context)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.cluster.token}"}

    def _list(self) -> str:
        """Replay what exists already (as ADDED) and return the list's resourceVersion."""
        listing = self._get_list()
        now = time.monotonic()
        for item in listing["items"]:
            self.handler("ADDED", item, now)
        return str(listing["metadata"]["resourceVersion"])

    def _get_list(self, attempts: int = 100) -> dict[str, Any]:
        # A CRD just Established may answer 429 while its watch cache starts: wait that out.
        for _ in range(attempts - 1):
            try:
                listing: dict[str, Any] = self.cluster.api("GET", self.path)
                return listing
            except urllib.error.HTTPError as exc:
                if exc.code != 429 and exc.code < 500:
                    raise
            time.sleep(0.3)
        return dict(self.cluster.api("GET", self.path))

    def run(self) -> None:
        version = self._list()
        while not self._stopped.is_set():
            version = self._stream(version)

    def _stream(self, version: str) -> str:
        query = urllib.parse.urlencode(
            {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true"}
        )
        self._conn = conn = self._connect()
        try:
            conn.request("GET", f"{self.path}?{query}", headers=self._headers())
            response = conn.getresponse()
            self.ready.set()
            for line in _lines(response):
                now = time.monotonic()  # before parsing: the event was here at this moment
                try:
                    event = json.loads(line)
                except ValueError as exc:
                    # Seen once in a full run: a pod event with one byte that was not UTF-8,
                    # which killed this thread and left the benchmark waiting for its timeout.
                    # Start over from a fresh list (what exists is replayed; first-seen times
                    # already recorded are kept).
                    print(f"{self.name}: unreadable event ({exc}); relisting", file=sys.stderr)
                    return self._list()
                if event["type"] == "ERROR":  # e.g. 410 Gone: start over from a fresh list
                    return self._list()
                version = event["object"]["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    self.handler(event["type"], event["object"], now)
        except (OSError, http.client.HTTPException):  # IncompleteRead when the stream is cut
            if self._stopped.is_set():
                return version
            time.sleep(0.2)  # the apiserver closed the stream: reconnect from where we were
        finally:
            conn.close()
        return version

    def stop(self) -> None:
        self._stopped.set()
        if self._conn is not None and self._conn.sock is not None:
            with contextlib.suppress(OSError):
                self._conn.sock.shutdown(2)


@dataclass
class Progress:
    """First-seen times of children and of a written status, keyed by object name."""

    pods: dict[str, float] = field(default_factory=dict)
    services: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, float] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def _first(self, seen: dict[str, float], event: str, obj: dict[str, Any], now: float) -> None:
        if event == "DELETED":
            return
        with self.changed:
            seen.setdefault(obj["metadata"]["name"], now)
            self.changed.notify_all()

    def on_pod(self, event: str, obj: dict[str, Any], now: float) -> None:
        self._first(self.pods, event, obj, now)

    def on_service(self, event: str, obj: dict[str, Any], now: float) -> None:
        self._first(self.services, event, obj, now)

    def on_model_deployment(self, event: str, obj: dict[str, Any], now: float) -> None:
        observed = (obj.get("status") or {}).get("observedGeneration")
        if observed is not None and observed == obj["metadata"].get("generation"):
            self._first(self.statuses, event, obj, now)

    def children_at(self, name: str, workers: int) -> float | None:
        """When the last expected child of `name` appeared; None while one is missing."""
        pods, services = expected_children(name, workers)
        times = [self.pods.get(p) for p in pods] + [self.services.get(s) for s in services]
        return None if None in times else max(t for t in times if t is not None)

    def complete_at(self, name: str, workers: int) -> float | None:
        """When `name` had every child and its status; None while it has not."""
        children, status = self.children_at(name, workers), self.statuses.get(name)
        return None if children is None or status is None else max(children, status)

    def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        with self.changed:
            if not self.changed.wait_for(done, timeout):
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class NamespaceWatches:
    """The three watches of one namespace, feeding one Progress."""

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self.progress = Progress()
        paths: Iterable[tuple[str, Handler]] = (
            (POD_PATH, self.progress.on_pod),
            (SERVICE_PATH, self.progress.on_service),
            (MD_PATH, self.progress.on_model_deployment),
        )
        self._watches = [
            StreamingWatch(cluster, path.format(ns=namespace), handler) for path, handler in paths
        ]

    def __enter__(self) -> Progress:
        for watch in self._watches:
            watch.start()
        for watch in self._watches:
            if not watch.ready.wait(30):
                raise TimeoutError(f"{watch.name} did not start")
        return self.progress

    def __exit__(self, *exc: object) -> None:
        for watch in self._watches:
            watch.stop()
