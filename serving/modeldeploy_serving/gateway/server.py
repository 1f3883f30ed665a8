"""Running the gateway's ASGI app on uvicorn, in the calling thread until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

from .app import Gateway
from .config import GatewayConfig
from .replicas import ReplicaSource


def run_gateway(
    config: GatewayConfig,
    source: ReplicaSource,
    host: str,
    port: int,
) -> None:
    """Serve until interrupted. uvicorn's access log is off: it costs CPU on every request,
    and the gateway's counters say what it did; its own log lines never carry a header."""
    import uvicorn

    gateway = Gateway(config, source)
    server = uvicorn.Server(
        uvicorn.Config(
            gateway.asgi_app(),
            host=host,
            port=port,
            access_log=False,
            log_level=logging.WARNING,
            timeout_keep_alive=30,
        )
    )
    server.run()
