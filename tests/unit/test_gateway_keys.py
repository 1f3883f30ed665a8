"""API keys of the gateway: parsing, the Bearer header, a rotating key file, failing closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy_serving.gateway.config import (
    GatewayConfig,
    LocalRoute,
    OverflowTarget,
    SecretSource,
)
from modeldeploy_serving.gateway.errors import error_body
from modeldeploy_serving.gateway.keys import (
    KeyStore,
    bearer_token,
    parse_keys,
    read_provider_key,
)


def test_parse_keys_one_per_line() -> None:
    assert parse_keys("a\n\n  b  \n# old key\nc\n") == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer k1", "k1"),
        ("bearer   k1 ", "k1"),
        ("Basic dXNlcg==", None),
        ("Bearer ", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_key_file_is_read_again_after_the_reload_period(tmp_path: Path) -> None:
    now = [0.0]
    keys = tmp_path / "api-keys"
    keys.write_text("first\n")
    store = KeyStore(SecretSource(file=str(keys)), reload_s=10, clock=lambda: now[0])
    assert store.accepts("first") and not store.accepts("second")
    keys.write_text("second\n")
    now[0] = 5.0
    assert store.accepts("first")  # not yet re-read
    now[0] = 10.0
    assert store.accepts("second") and not store.accepts("first")
    assert not store.accepts(None)


def test_unreadable_source_accepts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not KeyStore(SecretSource(file=str(tmp_path / "missing"))).accepts("anything")
    monkeypatch.delenv("MD_TEST_KEYS", raising=False)
    assert KeyStore(SecretSource(env="MD_TEST_KEYS")).count == 0
    monkeypatch.setenv("MD_TEST_KEYS", "k1\nk2")
    assert KeyStore(SecretSource(env="MD_TEST_KEYS")).accepts("k2")


def test_provider_key_is_the_first_key_line(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("# provider\nsk-live\n")
    assert read_provider_key(SecretSource(file=str(path))) == "sk-live"
    assert read_provider_key(None) is None
    with pytest.raises(LookupError, match="cannot read") as info:
        read_provider_key(SecretSource(file=str(tmp_path / "missing")))
    assert "sk-live" not in str(info.value)


def test_secret_source_needs_exactly_one_place() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SecretSource()
    with pytest.raises(ValueError, match="exactly one"):
        SecretSource(file="/a", env="B")


def test_config_rejects_local_only_with_overflow_and_duplicate_names() -> None:
    target = OverflowTarget(base_url="http://p/v1", model="m")
    with pytest.raises(ValueError, match="local_only forbids overflow"):
        LocalRoute(
            name="a", base_url="http://a", app_name="a", slots_per_replica=1,
            local_only=True, overflow=target,
        )  # fmt: skip
    route = LocalRoute(name="a", base_url="http://a", app_name="a", slots_per_replica=1)
    with pytest.raises(ValueError, match="unique"):
        GatewayConfig(routes=(route, route))


def test_waiting_room_counts_the_engines_queue_and_serves() -> None:
    route = LocalRoute(
        name="a", base_url="http://a", app_name="a", slots_per_replica=2,
        admitted_per_replica=4, max_queued_requests=3,
    )  # fmt: skip
    assert route.waiting_room(0) == 3  # cold: only Serve's queue
    assert route.waiting_room(2) == 2 * (4 - 2) + 3
    unbounded = route.model_copy(update={"max_queued_requests": -1})
    assert unbounded.waiting_room(2) == -1


def test_error_body_is_openai_shaped() -> None:
    assert error_body(401, "Incorrect API key provided.", "invalid_api_key") == {
        "error": {
            "message": "Incorrect API key provided.",
            "type": "authentication_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
