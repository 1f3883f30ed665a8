"""`modeldeploy validate` and `modeldeploy crd` as a user runs them (a real subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(str(p) for p in (ROOT / "examples").glob("*.yaml"))

BAD = """\
apiVersion: modeldeploy.dev/v1alpha1
kind: ModelDeployment
metadata: {name: bad}
spec:
  model: {source: hf://org/model}
  engine: {maxModelLen: "long"}
  scaling: {minReplicas: 3, maxReplicas: 2, burst: true}
---
apiVersion: modeldeploy.dev/v1alpha1
kind: ModelDeployment
metadata: {name: good}
spec:
  model: {source: hf://org/model}
"""


def _modeldeploy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modeldeploy_operator.cli", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_examples_validate() -> None:
    assert EXAMPLES, "examples/ has no YAML files"
    result = _modeldeploy("validate", "-f", *EXAMPLES)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": valid") == len(EXAMPLES)


def test_bad_file_names_each_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = _modeldeploy("validate", "-f", str(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert any("[document 0]: spec.engine.maxModelLen: " in line for line in lines), lines
    assert any("[document 0]: spec.scaling.burst: unknown field" in line for line in lines)
    assert any(
        "[document 0]: spec.scaling.maxReplicas: maxReplicas must be greater than or equal to "
        "minReplicas" in line
        for line in lines
    ), lines
    assert "[document 1]: valid" in result.stdout


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    result = _modeldeploy("validate", "-f", str(broken), str(tmp_path / "absent.yaml"))
    assert result.returncode == 1
    assert "not valid YAML" in result.stderr
    assert "absent.yaml: cannot read" in result.stderr


def test_crd_command_prints_committed_crd() -> None:
    result = _modeldeploy("crd")
    assert result.returncode == 0
    committed = (ROOT / "crds" / "modeldeployments.modeldeploy.dev.yaml").read_text()
    assert result.stdout == committed
