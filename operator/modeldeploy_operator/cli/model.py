"""`modeldeploy digest DIR` and the fit check of `modeldeploy validate`.

`digest` hashes a local model folder into the manifest every replica checks (JSON, or the
`spec.model.digests` YAML to paste into a ModelDeployment). `validate` prints, for each valid
ModelDeployment, the same FitCheck verdict and numbers the operator reports, from `--model-config`
or from config.json in a file:// source's folder.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from modeldeploy_serving.digests import Manifest, digest_dir, render_manifest

from ..api import ModelDeployment
from ..decide.model_checks import engine_settings, local_model_config
from ..decide.preflight import FitReport, architecture_from_config, check_fit

COMMIT = re.compile(r"^[0-9a-f]{40}$")


def fit_report(md: ModelDeployment, config: dict[str, Any]) -> FitReport:
    """The preflight verdict for one ModelDeployment and a parsed config.json."""
    return check_fit(architecture_from_config(config), engine_settings(md.spec))


def fit_line(md: ModelDeployment, model_config: Path | None) -> str | None:
    """`FitCheck <verdict>: <numbers>` for validate, or None when there is no config.json."""
    path = model_config or local_model_config(md.spec)
    if path is None or not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        report = fit_report(md, config)
    except (OSError, ValueError) as exc:
        return f"FitCheck Unknown: {path}: {exc}"
    return f"FitCheck {report.verdict}: {report.message}"


def _revision_of(folder: Path, given: str | None) -> str | None:
    """The revision to record: given, or the commit a Hub cache snapshot folder is named by."""
    if given:
        return given
    return folder.name if COMMIT.match(folder.name) else None


def cmd_digest(args: argparse.Namespace) -> int:
    folder = Path(args.dir).expanduser()
    if not folder.is_dir():
        print(f"{args.dir}: not a folder", file=sys.stderr)
        return 1
    if args.revision and not COMMIT.match(args.revision):
        print(f"--revision: expected a 40-character lowercase hex commit, got {args.revision!r}")
        return 1
    started = time.monotonic()
    files = digest_dir(folder)
    seconds = time.monotonic() - started
    size = sum((folder / name).stat().st_size for name in files)
    manifest = Manifest(files=files, revision=_revision_of(folder.resolve(), args.revision))
    if args.format == "yaml":
        model: dict[str, Any] = {"digests": {"files": manifest.files}}
        if manifest.revision:
            model = {"revision": manifest.revision, **model}
        text = yaml.safe_dump({"spec": {"model": model}}, sort_keys=False)
    else:
        text = render_manifest(manifest)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    rate = size / seconds / 1e9 if seconds > 0 else 0.0
    print(
        f"{len(files)} files, {size / 1e9:.3f} GB hashed in {seconds:.2f} s ({rate:.2f} GB/s)",
        file=sys.stderr,
    )
    return 0


def add_model_commands(commands: Any) -> None:
    """Register `digest` on cli/commands.py's subparsers object."""
    digest = commands.add_parser(
        "digest", help="write the SHA-256 manifest of a local model folder"
    )
    digest.add_argument("dir", help="model folder (every file below it, hidden ones left out)")
    digest.add_argument(
        "-o", "--output", metavar="FILE", help="write the manifest here (default: stdout)"
    )
    digest.add_argument(
        "--revision",
        help="commit the files were taken from (default: a Hub snapshot folder's own name)",
    )
    digest.add_argument(
        "--format",
        choices=("json", "yaml"),
        default="json",
        help="json: a manifest (for a ConfigMap); yaml: spec.model.digests to paste into a spec",
    )
    digest.set_defaults(func=cmd_digest)
