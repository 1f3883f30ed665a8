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


def test_validate_shows_the_fit_check_numbers() -> None:
    config = ROOT / "tests" / "data" / "models" / "gpt-oss-120b" / "config.json"
    example = str(ROOT / "examples" / "gpt-oss-120b.yaml")
    result = _modeldeploy("validate", "-f", example, "--model-config", str(config))
    assert result.returncode == 0, result.stderr
    assert "FitCheck Passed: fits: weights 60.7 GiB (116.8B parameters, mxfp4)" in result.stdout
    assert "of 75.7 GiB per GPU" in result.stdout


def test_validate_fails_when_the_model_does_not_fit(tmp_path: Path) -> None:
    config = ROOT / "tests" / "data" / "models" / "qwen2.5-7b-instruct" / "config.json"
    spec = tmp_path / "qwen.yaml"
    spec.write_text(
        "apiVersion: modeldeploy.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: qwen}\n"
        "spec:\n  model: {source: hf://Qwen/Qwen2.5-7B-Instruct}\n"
        "  engine: {tensorParallelSize: 8}\n"
        "  resources: {gpuProduct: NVIDIA-H100-80GB-HBM3}\n"
    )
    result = _modeldeploy("validate", "-f", str(spec), "--model-config", str(config))
    assert result.returncode == 1
    assert (
        "FitCheck Failed: tensorParallelSize 8 does not divide the model's 28 attention heads"
        in result.stdout
    )


def test_digest_writes_the_manifest_replicas_check(tmp_path: Path) -> None:
    import hashlib
    import json

    folder = tmp_path / "0123456789abcdef0123456789abcdef01234567"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "config.json").write_text("{}")
    out = tmp_path / "manifest.json"
    result = _modeldeploy("digest", str(folder), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "2 files" in result.stderr and "GB/s" in result.stderr
    manifest = json.loads(out.read_text())
    assert manifest == {
        "algorithm": "sha256",
        # A Hub cache snapshot folder is named by its commit: that is the revision.
        "revision": folder.name,
        "files": {
            "config.json": hashlib.sha256(b"{}").hexdigest(),
            "model.safetensors": hashlib.sha256(b"weights").hexdigest(),
        },
    }
    as_yaml = _modeldeploy("digest", str(folder), "--format", "yaml")
    assert "  model:\n    revision: 0123456789abcdef" in as_yaml.stdout
    assert "model.safetensors: " + hashlib.sha256(b"weights").hexdigest() in as_yaml.stdout
