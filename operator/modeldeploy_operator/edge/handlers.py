"""kopf wiring: thin handlers, each a decorator and one call into the Reconciler.

Create, update, resume and a timer share one reconcile (level-based), so drift is repaired on the
next tick rather than only when an event arrives. A per-object lock keeps a timer tick and a
change handler from reconciling the same ModelDeployment at the same time.

Timer ticks run on a small pool of their own. In kopf's shared executor, the ticks of hundreds of
settled ModelDeployments queued in front of the create and update handlers of new ones; apart,
a change is acted on at once, and with many objects the resync stretches out (each tick waits
for a free resync thread) instead of starving everything else.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import aiohttp
import kopf
import urllib3
from kubernetes.client.exceptions import ApiException

from ..api import GROUP, PLURAL, VERSION
from . import metrics
from .reconcile import Reconciler

ANNOTATION_PREFIX = "modeldeploy.dev"
# Threads for timer ticks (resyncs), apart from the handlers' (see the module docstring).
RESYNC_THREADS = 2
# Threads for create/update/resume handlers. Each reconcile mostly waits on the apiserver, so
# kopf's default (CPU count + 4) left the apiserver idle while hundreds of objects queued.
HANDLER_THREADS = 16
# Requests kopf may have in flight at once, watch streams apart. kopf's own session has no limit:
# started with 500 ModelDeployments waiting, it patched them and posted their events all at once
# and kept 186-453 TLS connections open, each ~300 kB (asyncio's 256 kB read buffer per TLS
# connection, OpenSSL's buffers): peak RSS 201-277 MB. Bounded, the same requests share ~20 warm
# connections and the peak is 151-161 MB, as fast (bench/control_plane/README.md).
KOPF_REQUESTS = 16
# Seconds before a reconcile that a Kubernetes API call failed is tried again.
API_RETRY_S = 5


@dataclass(frozen=True)
class KopfEvents:
    """Kubernetes events attached to one ModelDeployment, posted through kopf."""

    body: Any

    def normal(self, reason: str, message: str) -> None:
        kopf.info(self.body, reason=reason, message=message)

    def warning(self, reason: str, message: str) -> None:
        kopf.warn(self.body, reason=reason, message=message)


def api_retry(exc: ApiException | urllib3.exceptions.HTTPError) -> kopf.TemporaryError:
    """A failed Kubernetes call, as a retry in a few seconds (never a sleep in the handler).

    Conflicts and apiserver hiccups answer with a status; an apiserver that is away (restarted,
    unreachable) raises urllib3's errors instead. Left to kopf, those would wait out its default
    backoff of a minute before the next try, so drift repair and status stopped that long after
    every apiserver restart.
    """
    if isinstance(exc, ApiException):
        return kopf.TemporaryError(f"Kubernetes API: {exc.status} {exc.reason}", delay=API_RETRY_S)
    return kopf.TemporaryError(
        f"Kubernetes API unreachable: {type(exc).__name__}", delay=API_RETRY_S
    )


class RequestSlots:
    """aiohttp client middleware: at most `limit` requests in flight, except watch streams.

    Not a connector limit: a watch holds its connection for as long as it streams (minutes), one
    per watched namespace and kind, so with enough namespaces (globs included) they would take
    every connection and starve the patches. A request holds its slot until the response headers
    arrive; its body (a patched object, a few kB) is read right after, so the connections in use
    stay close to `limit`. Create it in the event loop that sends the requests.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)

    @staticmethod
    def is_watch(request: aiohttp.ClientRequest) -> bool:
        return request.url.query.get("watch", "").lower() in {"true", "1"}

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if self.is_watch(request):
            return await handler(request)
        async with self._slots:
            return await handler(request)


def kopf_session(info: kopf.ConnectionInfo, limit: int = KOPF_REQUESTS) -> kopf.AiohttpSession:
    """The session kopf would build from `info` (same TLS context, headers, proxy), but with at
    most `limit` requests in flight (see KOPF_REQUESTS). Call it in kopf's event loop."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
        middlewares=(RequestSlots(limit),),
    )
    return kopf.AiohttpSession(
        aiohttp_session=session,
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
    )


def build_registry(reconciler: Reconciler, resync_seconds: float) -> kopf.OperatorRegistry:
    """A kopf registry with every handler of the operator bound to `reconciler`."""
    registry = kopf.OperatorRegistry()
    locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
    reconciled_at: dict[str, float] = {}  # uid -> when its last reconcile succeeded
    resync_pool = ThreadPoolExecutor(RESYNC_THREADS, thread_name_prefix="resync")
    resource = (GROUP, VERSION, PLURAL)

    def reconcile(body: kopf.Body, patch: kopf.Patch) -> None:
        uid = body["metadata"]["uid"]
        with locks[uid]:
            try:
                status = reconciler.reconcile(dict(body), KopfEvents(body))
            except (ApiException, urllib3.exceptions.HTTPError) as exc:
                raise api_retry(exc) from None
            reconciled_at[uid] = time.monotonic()
        # An unchanged status is not written: with hundreds of ModelDeployments, the timer's
        # no-op patches were a steady load on the apiserver for nothing.
        if status != dict(body.get("status") or {}):
            patch.status.update(status)

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> Any:
        # The client's kubeconfig or in-cluster login (file reads: off the event loop), into a
        # session with a request limit, made in the loop (its semaphore belongs to it).
        info = await asyncio.to_thread(kopf.login_via_client, **kwargs)
        return None if info is None else kopf_session(info)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Annotations rather than status: our status schema is strict and kopf's would be pruned.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix=ANNOTATION_PREFIX
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
        )
        settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
        settings.posting.level = 20  # INFO: an event for every action
        settings.execution.max_workers = HANDLER_THREADS

    @kopf.on.resume(*resource, registry=registry)
    @kopf.on.create(*resource, registry=registry)
    @kopf.on.update(*resource, registry=registry)
    def on_change(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        reconcile(body, patch)

    # The first tick waits one interval: at startup the resume or create handler has just
    # reconciled, so an immediate tick would repeat that work for every object at once.
    @kopf.timer(*resource, interval=resync_seconds, initial_delay=resync_seconds, registry=registry)
    async def on_timer(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        # A resync is due an interval after the last reconcile of any kind: a tick right after
        # a create or update handler ran would only read back what it just wrote. (A tick
        # comes an interval after the previous one ends, so ticks alone are never skipped.)
        since = time.monotonic() - reconciled_at.get(body["metadata"]["uid"], -math.inf)
        if since < 0.9 * resync_seconds:
            return
        # As kopf runs a sync handler, with its context (event posting needs it) copied over.
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(resync_pool, context.run, reconcile, body, patch)

    @kopf.on.event(*resource, registry=registry)
    def on_event(event: kopf.RawEvent, **_: Any) -> None:
        if event["type"] == "DELETED":
            metadata = event["object"]["metadata"]
            metrics.forget(metadata["namespace"], metadata["name"])
            locks.pop(metadata["uid"], None)
            reconciled_at.pop(metadata["uid"], None)
            reconciler.forget(metadata["namespace"], metadata["name"], metadata["uid"])

    return registry
