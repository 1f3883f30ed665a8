"""HAProxy settings every haproxy ingress mode carries (tests/serving exercises them live)."""

from __future__ import annotations

import os
from pathlib import Path

from modeldeploy_serving.ingress import (
    HAPROXY_CLIENT_TIMEOUT_S,
    IMAGE_HAPROXY_LAUNCHER,
    INGRESS_MODES,
    ingress_env,
)
from modeldeploy_serving.local import local_haproxy_launcher, local_ray_env

ROOT = Path(__file__).resolve().parents[2]


def test_haproxy_modes_retry_empty_responses_and_time_out_stalled_clients() -> None:
    for mode in INGRESS_MODES:
        env = ingress_env(mode)  # type: ignore[arg-type]
        if env.get("RAY_SERVE_ENABLE_HA_PROXY") != "1":
            assert "RAY_SERVE_HAPROXY_RETRY_ON" not in env
            assert "RAY_SERVE_HAPROXY_BINARY_PATH" not in env
            continue
        assert env["RAY_SERVE_HAPROXY_RETRY_ON"].split() == ["conn-failure", "empty-response"]
        assert env["RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S"] == str(HAPROXY_CLIENT_TIMEOUT_S)
        assert env["RAY_SERVE_HAPROXY_BINARY_PATH"] == IMAGE_HAPROXY_LAUNCHER
        # A reload (any replica change) lets running streams finish: not Ray's 120 s.
        assert int(env["RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S"]) >= 1800
    # Far below Ray's hour, far above a client pausing between two writes.
    assert 10 <= HAPROXY_CLIENT_TIMEOUT_S <= 120


def test_the_image_launcher_is_where_the_serving_image_installs_modeldeploy() -> None:
    dockerfile = (ROOT / "docker" / "serving.Dockerfile").read_text()
    venv = Path(IMAGE_HAPROXY_LAUNCHER).parent.parent
    assert f"python -m venv {venv}" in dockerfile
    # The final stage installs into that virtualenv and puts it first on PATH (the real-node
    # tier runs the image: its head pods start HAProxy through this launcher).
    assert f"ENV PATH={venv}/bin:$PATH" in dockerfile


def test_a_local_ray_starts_the_launcher_installed_beside_its_python(tmp_path: Path) -> None:
    # Ray refuses a path that is not an executable file, and HAProxy would then not start.
    launcher = local_ray_env("haproxy", tmp_path, 9100)["RAY_SERVE_HAPROXY_BINARY_PATH"]
    assert launcher == local_haproxy_launcher()
    assert os.path.isfile(launcher) and os.access(launcher, os.X_OK)
