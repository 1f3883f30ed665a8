"""`python -m modeldeploy_serving.gateway CONFIG`: the gateway alone, as its Deployment runs it.

Replicas are read from each route's Ray dashboard; a route without one is read from the file
`--replicas-file` names (the local run, whose Ray driver publishes Serve's counts there) or else
from the Serve instance this process connects to (RAY_ADDRESS).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import GatewayConfig
from .replicas import CombinedSource, FileSource, ReplicaSource
from .server import run_gateway

# A replicas file older than this many poll intervals (and at least MIN_FILE_AGE_S) reads as
# unknown: its writer stopped.
STALE_POLLS = 10
MIN_FILE_AGE_S = 5.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m modeldeploy_serving.gateway",
        description="Serve the OpenAI gateway described by a GatewayConfig JSON file.",
    )
    parser.add_argument("config", type=Path, help="GatewayConfig as JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--replicas-file",
        type=Path,
        help="JSON {application: ready replicas} kept current by another process, for routes "
        "without a dashboard (the local run); without it they are read from Ray (RAY_ADDRESS)",
    )
    args = parser.parse_args(argv)
    config = GatewayConfig.model_validate_json(args.config.read_text(encoding="utf-8"))
    in_process = [r.app_name for r in config.routes if r.dashboard_url is None]
    dashboards = {r.app_name: r.dashboard_url for r in config.routes if r.dashboard_url}
    local: ReplicaSource | None = None
    if args.replicas_file is not None:
        max_age = max(MIN_FILE_AGE_S, STALE_POLLS * config.poll_interval_s)
        local = FileSource(args.replicas_file, max_age)
    elif in_process:
        import logging

        import ray

        ray.init(address="auto", logging_level=logging.WARNING)
    run_gateway(config, CombinedSource(in_process, dashboards, local), args.host, args.port)


if __name__ == "__main__":
    main()
