"""HAProxy settings every haproxy ingress mode carries (tests/serving exercises them live)."""

from __future__ import annotations

from modeldeploy_serving.ingress import HAPROXY_CLIENT_TIMEOUT_S, INGRESS_MODES, ingress_env


def test_haproxy_modes_retry_empty_responses_and_time_out_stalled_clients() -> None:
    for mode in INGRESS_MODES:
        env = ingress_env(mode)  # type: ignore[arg-type]
        if env.get("RAY_SERVE_ENABLE_HA_PROXY") != "1":
            assert "RAY_SERVE_HAPROXY_RETRY_ON" not in env
            continue
        assert env["RAY_SERVE_HAPROXY_RETRY_ON"].split() == ["conn-failure", "empty-response"]
        assert env["RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S"] == str(HAPROXY_CLIENT_TIMEOUT_S)
    # Far below Ray's hour, far above a client pausing between two writes.
    assert 10 <= HAPROXY_CLIENT_TIMEOUT_S <= 120
