"""The `modeldeploy` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from ..api import ModelDeployment
from ..builders.crd import render_crd
from ..common.validation import validate_text
from .model import add_model_commands, fit_line


def _cmd_crd(_: argparse.Namespace) -> int:
    sys.stdout.write(render_crd())
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    failed = False
    for name in args.files:
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"{name}: cannot read: {exc.strerror}", file=sys.stderr)
            failed = True
            continue
        results = validate_text(text)
        if not results:
            print(f"{name}: no ModelDeployment documents", file=sys.stderr)
            failed = True
        for index, problems in results:
            where = f"{name}" if len(results) == 1 else f"{name}[document {index}]"
            for problem in problems:
                print(f"{where}: {problem}", file=sys.stderr)
            failed = failed or bool(problems)
            if not problems:
                print(f"{where}: valid")
                document = list(yaml.safe_load_all(text))[index]
                fit = fit_line(ModelDeployment.model_validate(document), args.model_config)
                if fit is not None:
                    print(f"{where}: {fit}")
                    failed = failed or fit.startswith("FitCheck Failed")
    return 1 if failed else 0


def _cmd_operator(args: argparse.Namespace) -> int:
    from ..edge.operator_main import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modeldeploy",
        description="Serve open-weight LLMs on Kubernetes with Ray Serve and vLLM.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    crd = commands.add_parser("crd", help="print the ModelDeployment CRD generated from the API")
    crd.set_defaults(func=_cmd_crd)

    validate = commands.add_parser("validate", help="validate ModelDeployment YAML files")
    validate.add_argument(
        "-f",
        "--filename",
        dest="files",
        nargs="+",
        required=True,
        metavar="FILE",
        help="YAML files, each with one or more documents",
    )
    validate.add_argument(
        "--model-config",
        type=Path,
        metavar="CONFIG_JSON",
        help=(
            "the model's config.json, for the GPU fit check (default: config.json in a file:// "
            "source's folder)"
        ),
    )
    validate.set_defaults(func=_cmd_validate)
    add_model_commands(commands)

    from ..edge.operator_main import add_arguments

    operator = commands.add_parser("operator", help="run the operator (kopf) against a cluster")
    add_arguments(operator)
    operator.set_defaults(func=_cmd_operator)

    from .serve import add_serving_commands

    add_serving_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code
