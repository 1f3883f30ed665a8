"""The architecture rules of pyproject.toml's [tool.importlinter] hold, and each one fails when
broken: an import that breaks it is planted in a copy of the packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = {"modeldeploy_operator": "operator", "modeldeploy_serving": "serving"}


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contracts on the packages under `tree`."""
    path = ":".join(str(tree / folder) for folder in PACKAGES.values())
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=tree,
        env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for package, folder in PACKAGES.items():
        shutil.copytree(
            ROOT / folder / package,
            tmp_path / folder / package,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    return tmp_path


def plant(tree: Path, module: str, line: str) -> None:
    package, *rest = module.split(".")
    path = tree / PACKAGES[package] / package / Path(*rest).with_suffix(".py")
    path.write_text(path.read_text() + f"\n{line}  # planted\n")


def test_the_contracts_hold(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "modeldeploy_serving.config",
            "import modeldeploy_operator.common.names",
            "serving never imports the operator",
        ),
        (
            "modeldeploy_operator.api.spec",
            "from modeldeploy_operator.decide import workers",
            "the API models import no other part of the operator and no client",
        ),
        (
            "modeldeploy_operator.decide.workers",
            "from modeldeploy_operator.edge import kube",
            "builders and decisions import no I/O module",
        ),
        # Through another module counts too: a pure module reaching the client indirectly.
        (
            "modeldeploy_operator.common.hashing",
            "from modeldeploy_operator.edge import dashboard",
            "builders and decisions import no I/O module",
        ),
    ],
)
def test_each_contract_fails_when_broken(tree: Path, module: str, line: str, contract: str) -> None:
    plant(tree, module, line)
    result = lint_imports(tree)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout, result.stdout
