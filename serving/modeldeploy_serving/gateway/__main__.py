"""`python -m modeldeploy_serving.gateway CONFIG`: the gateway alone, as its Deployment runs it.

Replicas are read from each route's Ray dashboard; a route without one is read from the Serve
instance this process connects to (RAY_ADDRESS), which only a local run has.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import GatewayConfig
from .replicas import CombinedSource
from .server import run_gateway


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m modeldeploy_serving.gateway",
        description="Serve the OpenAI gateway described by a GatewayConfig JSON file.",
    )
    parser.add_argument("config", type=Path, help="GatewayConfig as JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    config = GatewayConfig.model_validate_json(args.config.read_text(encoding="utf-8"))
    in_process = [r.app_name for r in config.routes if r.dashboard_url is None]
    dashboards = {r.app_name: r.dashboard_url for r in config.routes if r.dashboard_url}
    if in_process:
        import logging

        import ray

        ray.init(address="auto", logging_level=logging.WARNING)
    run_gateway(config, CombinedSource(in_process, dashboards), args.host, args.port)


if __name__ == "__main__":
    main()
