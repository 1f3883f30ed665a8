"""The serving subcommands of `modeldeploy`: `serve -f FILE` and `dev make-tiny-model DIR`.

Kept apart from cli/commands.py so the serving layer's commands stay in one place; the engine
and Ray are imported only when a command runs, so the rest of the CLI works without them
installed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from modeldeploy_serving.ingress import DEFAULT_INGRESS, INGRESS_MODES

from ..api import ModelDeployment
from ..common.validation import parse_model_deployment

DEFAULT_SECRETS_DIR = "~/.config/modeldeploy/secrets"


def load_model_deployments(path: Path) -> list[ModelDeployment]:
    """The ModelDeployments of a YAML file, at least one (ValueError if any is invalid)."""
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    if not documents:
        raise ValueError("no ModelDeployment document")
    mds = [parse_model_deployment(doc) for doc in documents]
    names = [md.metadata.get("name") for md in mds]
    if len(set(names)) != len(names):
        raise ValueError(f"metadata.name must differ between documents, got {names}")
    return mds


def _cmd_serve(args: argparse.Namespace) -> int:
    from modeldeploy_serving.local import serve

    from ..builders.serving_config import load_serving_config

    try:
        mds = load_model_deployments(Path(args.file))
        if len(mds) == 1 and not mds[0].spec.uses_gateway() and not args.gateway:
            config = load_serving_config(Path(args.file))
        else:
            return _serve_with_gateway(args, mds)
    except (OSError, ValueError) as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 1
    ready_file = Path(args.ready_file) if args.ready_file else None
    serve(config, host=args.host, port=args.port, ingress=args.ingress, ready_file=ready_file)
    return 0


def _serve_with_gateway(args: argparse.Namespace, mds: list[ModelDeployment]) -> int:
    """Several models, or keys/overflow/local-only: the gateway in front of the local Serve."""
    from modeldeploy_serving.gateway.local_run import serve_with_gateway
    from modeldeploy_serving.local import app_base_urls, free_port

    from ..builders.gateway import Location, build_gateway_config, local_secret
    from ..builders.serving_config import build_serving_config

    configs = [build_serving_config(md) for md in mds]
    serve_port = free_port()
    urls = app_base_urls(configs, f"http://127.0.0.1:{serve_port}")
    models = list(zip(mds, configs, strict=True))
    apps = {md.metadata.get("name"): config.app_name for md, config in models}

    def locate(md: ModelDeployment) -> Location:
        app = apps[md.metadata.get("name")]
        return Location(base_url=urls[app], app_name=app, dashboard_url=None)

    secrets = local_secret(Path(args.secrets_dir).expanduser())
    gateway = build_gateway_config(models, locate, secrets)
    serve_with_gateway(
        configs,
        gateway,
        serve_port,
        host=args.host,
        port=args.port,
        ingress=args.ingress,
        ready_file=Path(args.ready_file) if args.ready_file else None,
    )
    return 0


def _cmd_make_tiny_model(args: argparse.Namespace) -> int:
    from modeldeploy_serving.tiny_model import is_tiny_model, make_tiny_model

    target = Path(args.dir).expanduser()
    cached = is_tiny_model(target.resolve())
    path = make_tiny_model(target)
    print(f"{path} ({'already there' if cached else 'written'})")
    return 0


def add_serving_commands(commands: Any) -> None:
    """Register the serving subcommands on cli/commands.py's subparsers object."""
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
    serve.add_argument(
        "--gateway",
        action="store_true",
        help="put the gateway in front even when the file does not need it",
    )
    serve.add_argument(
        "--secrets-dir",
        default=DEFAULT_SECRETS_DIR,
        metavar="DIR",
        help=(
            "where Secret keys the file references are read: DIR/NAME/KEY, unless the variable "
            f"MODELDEPLOY_SECRET_<NAME>_<KEY> is set (default {DEFAULT_SECRETS_DIR})"
        ),
    )
    serve.add_argument(
        "--ready-file", metavar="FILE", help="write the base URL here once the endpoint answers"
    )
    serve.set_defaults(func=_cmd_serve)

    dev = commands.add_parser("dev", help="tools for development and tests")
    dev_commands = dev.add_subparsers(dest="dev_command", required=True, metavar="COMMAND")
    tiny = dev_commands.add_parser(
        "make-tiny-model", help="write a tiny deterministic Llama model (skipped if present)"
    )
    tiny.add_argument("dir", help="model directory to create")
    tiny.set_defaults(func=_cmd_make_tiny_model)
