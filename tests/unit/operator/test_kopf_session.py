"""kopf's HTTP session: the client's credentials, at most KOPF_REQUESTS requests in flight.

kopf's own session sends every request at once, each on a connection of its own if need be; each
TLS connection holds a 256 kB read buffer, so a burst of hundreds of objects cost the operator
tens of MB. Watch streams are never held back: they stream for minutes, one per namespace.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import kopf
import pytest
from yarl import URL

from modeldeploy_operator.edge.handlers import KOPF_REQUESTS, RequestSlots, kopf_session

CA = Path(ssl.get_default_verify_paths().cafile or "")
SERVER = "https://10.0.0.1:6443"
PATCH = f"{SERVER}/apis/modeldeploy.dev/v1alpha1/namespaces/ns/modeldeployments/llm"
WATCH = f"{SERVER}/apis/modeldeploy.dev/v1alpha1/modeldeployments?watch=true&resourceVersion=5"


class FakeRequest:
    """What RequestSlots reads of an aiohttp.ClientRequest: its URL."""

    def __init__(self, url: str) -> None:
        self.url = URL(url)


def test_only_watch_requests_are_watches() -> None:
    assert RequestSlots.is_watch(FakeRequest(WATCH))  # type: ignore[arg-type]
    assert RequestSlots.is_watch(FakeRequest(f"{SERVER}/api/v1/pods?watch=1"))  # type: ignore[arg-type]
    assert not RequestSlots.is_watch(FakeRequest(PATCH))  # type: ignore[arg-type]
    assert not RequestSlots.is_watch(FakeRequest(f"{SERVER}/api/v1/pods?watch=false"))  # type: ignore[arg-type]
    assert not RequestSlots.is_watch(FakeRequest(f"{SERVER}/api/v1/pods?limit=500"))  # type: ignore[arg-type]


async def run_requests(slots: RequestSlots, urls: list[str]) -> tuple[int, int]:
    """Send `urls` through the middleware at once; the most requests and the most non-watch
    requests that were in the handler together."""
    inside: list[str] = []
    most = most_plain = 0
    release = asyncio.Event()

    async def handler(request: Any) -> Any:
        nonlocal most, most_plain
        inside.append(str(request.url))
        most = max(most, len(inside))
        most_plain = max(most_plain, sum("watch=" not in u for u in inside))
        if "watch=" in str(request.url):
            await release.wait()  # a stream: open until the test ends
        else:
            await asyncio.sleep(0.01)
        inside.remove(str(request.url))
        return "response"

    watches = [asyncio.create_task(slots(FakeRequest(u), handler)) for u in urls if "watch" in u]  # type: ignore[arg-type]
    others = [slots(FakeRequest(u), handler) for u in urls if "watch" not in u]  # type: ignore[arg-type]
    assert set(await asyncio.gather(*others)) == {"response"}
    release.set()
    await asyncio.gather(*watches)
    return most, most_plain


def test_requests_beyond_the_limit_wait_for_a_slot() -> None:
    async def scenario() -> tuple[int, int]:
        return await run_requests(RequestSlots(3), [PATCH] * 20)

    most, most_plain = asyncio.run(scenario())
    assert most == most_plain == 3


def test_watch_streams_never_take_a_slot() -> None:
    # More streams than slots (one per namespace and kind): the patches still go through.
    async def scenario() -> tuple[int, int]:
        return await run_requests(RequestSlots(2), [WATCH] * 5 + [PATCH] * 10)

    most, most_plain = asyncio.run(scenario())
    assert most_plain == 2
    assert most == 5 + 2


def made_in_a_loop(info: kopf.ConnectionInfo, **kwargs: int) -> tuple[Any, dict[str, Any]]:
    """kopf_session(info) made in a running loop (as kopf's login calls it), then closed."""

    async def make() -> tuple[Any, dict[str, Any]]:
        made = kopf_session(info, **kwargs)
        session = made.aiohttp_session
        seen = {
            "middlewares": session._middlewares,
            "connector_limit": session.connector.limit if session.connector else None,
            "headers": dict(session.headers),
            "trust_env": session.trust_env,
            "ssl": session.connector._ssl if session.connector else None,
        }
        await session.close()
        return made, seen

    return asyncio.run(make())


def test_the_session_bounds_requests_not_connections() -> None:
    info = kopf.ConnectionInfo(server=SERVER, token="t0k3n")
    _, seen = made_in_a_loop(info)
    [slots] = seen["middlewares"]
    assert isinstance(slots, RequestSlots) and slots.limit == KOPF_REQUESTS > 0
    assert seen["connector_limit"] == 0  # aiohttp's "no limit": the streams need their own
    _, seen = made_in_a_loop(info, limit=4)
    assert seen["middlewares"][0].limit == 4


def test_the_credentials_and_the_context_are_kopfs() -> None:
    info = kopf.ConnectionInfo(
        server=SERVER,
        scheme="Bearer",
        token="t0k3n",
        default_namespace="models",
        priority=7,
        trust_env=True,
    )
    made, seen = made_in_a_loop(info)
    assert isinstance(made, kopf.AiohttpSession)
    assert seen["headers"]["Authorization"] == "Bearer t0k3n"
    assert seen["trust_env"] is True
    assert (made.server, made.default_namespace, made.priority) == (SERVER, "models", 7)
    basic = kopf.ConnectionInfo(server=SERVER, username="admin", password="secret")
    assert made_in_a_loop(basic)[1]["headers"]["Authorization"].startswith("Basic ")


@pytest.mark.skipif(not CA.is_file(), reason="no system CA bundle to verify against")
def test_the_apiserver_certificate_is_verified() -> None:
    _, seen = made_in_a_loop(kopf.ConnectionInfo(server=SERVER, token="t", ca_path=str(CA)))
    context = seen["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
