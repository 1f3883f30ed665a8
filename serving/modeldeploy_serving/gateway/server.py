"""Running the gateway's ASGI app on uvicorn, in the calling thread until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

from .app import Gateway
from .config import GatewayConfig
from .header_deadline import header_deadline_protocol
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
            # uvloop's event loop and httptools' C parser instead of asyncio's loop and h11:
            # 4-9 % less of the gateway's CPU per streamed request (bench/overhead/gateway_cpu.py;
            # figures in app.py's docstring). The parser's protocol adds a deadline for each
            # request's line and headers, which uvicorn lacks.
            loop="uvloop",
            http=header_deadline_protocol(config.request_read_timeout_s),
        )
    )
    server.run()
