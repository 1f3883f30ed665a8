"""The serving subcommands of `modeldeploy`: `serve -f FILE` and `dev make-tiny-model DIR`.

Kept apart from cli.py so the serving layer's commands stay in one place; the engine and Ray are
imported only when a command runs, so the rest of the CLI works without them installed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from modeldeploy_serving.ingress import DEFAULT_INGRESS, INGRESS_MODES


def _cmd_serve(args: argparse.Namespace) -> int:
    from modeldeploy_serving.local import serve

    from .serving_config import load_serving_config

    try:
        config = load_serving_config(Path(args.file))
    except (OSError, ValueError) as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 1
    serve(config, host=args.host, port=args.port, ingress=args.ingress)
    return 0


def _cmd_make_tiny_model(args: argparse.Namespace) -> int:
    from modeldeploy_serving.tiny_model import is_tiny_model, make_tiny_model

    target = Path(args.dir).expanduser()
    cached = is_tiny_model(target.resolve())
    path = make_tiny_model(target)
    print(f"{path} ({'already there' if cached else 'written'})")
    return 0


def add_serving_commands(commands: Any) -> None:
    """Register the serving subcommands on cli.py's subparsers object."""
    serve = commands.add_parser(
        "serve", help="serve a ModelDeployment file on a local Ray until interrupted"
    )
    serve.add_argument(
        "-f", "--filename", dest="file", required=True, metavar="FILE", help="ModelDeployment YAML"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port of the OpenAI endpoint")
    serve.add_argument(
        "--ingress",
        choices=INGRESS_MODES,
        default=DEFAULT_INGRESS,
        help=f"how HTTP reaches the replicas (default {DEFAULT_INGRESS})",
    )
    serve.set_defaults(func=_cmd_serve)

    dev = commands.add_parser("dev", help="tools for development and tests")
    dev_commands = dev.add_subparsers(dest="dev_command", required=True, metavar="COMMAND")
    tiny = dev_commands.add_parser(
        "make-tiny-model", help="write a tiny deterministic Llama model (skipped if present)"
    )
    tiny.add_argument("dir", help="model directory to create")
    tiny.set_defaults(func=_cmd_make_tiny_model)
