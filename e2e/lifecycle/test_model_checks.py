"""FitCheck and ModelVerified through the real apiserver, the operator and (for the digests) a
real local Ray with the real vLLM CPU engine.

- A model that does not fit its GPUs (a tensor-parallel size that does not divide the heads,
  from the model's config.json in a ConfigMap) gets FitCheck=False with both numbers, and no
  pod or Service is created; once the spec is fixed, the children appear.
- A copy of the tiny model with one byte flipped in its weights, pinned by a digest manifest in
  a ConfigMap: the replica refuses it before its engine starts, and ModelVerified=False names
  the file and both digests. Pointed at the untouched model, the replica verifies and serves,
  and status.model records the verified digests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cluster.localcluster import wait_until
from kubernetes import client

from modeldeploy_serving.digests import sha256_file

from .conftest import TINY_ENGINE, TINY_RESOURCES, ModelDeployments
from .harness import ROOT, LocalRayHead, OperatorProcess

QWEN_CONFIG = ROOT / "tests" / "data" / "models" / "qwen2.5-7b-instruct" / "config.json"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIGEST_COMMAND = [sys.executable, "-m", "modeldeploy_operator.cli", "digest"]


def configmap(mds: ModelDeployments, name: str, key: str, text: str) -> None:
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={key: text})
    mds.core.create_namespaced_config_map(mds.namespace, body)


def test_a_model_that_does_not_fit_creates_nothing(
    start_operator: Callable[..., OperatorProcess], mds: ModelDeployments
) -> None:
    start_operator()
    configmap(mds, "qwen-config", "config.json", QWEN_CONFIG.read_text())
    spec: dict[str, Any] = {
        "model": {"source": "hf://Qwen/Qwen2.5-7B-Instruct"},
        "engine": {"tensorParallelSize": 8, "maxModelLen": 16384},
        "resources": {"gpuProduct": "NVIDIA-H100-80GB-HBM3"},
        "preflight": {"configMapRef": {"name": "qwen-config", "key": "config.json"}},
    }
    mds.create("qwen", spec)
    fit = mds.wait_condition("qwen", "FitCheck", "False", "Failed", timeout=60)
    assert "tensorParallelSize 8 does not divide the model's 28 attention heads" in fit["message"]
    ready = mds.condition("qwen", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "FitCheckFailed")
    assert mds.get("qwen")["status"]["phase"] == "Failed"
    time.sleep(6)  # three resyncs: still nothing
    assert mds.pods("qwen") == [] and mds.services("qwen") == []
    assert any(e.reason == "Failed" and "FitCheck=False" in e.message for e in mds.events("qwen"))

    mds.patch_spec("qwen", {"engine": {"tensorParallelSize": 4}})
    passed = mds.wait_condition("qwen", "FitCheck", "True", timeout=60)
    assert "3.5 GiB per GPU over 4 GPUs" in passed["message"]  # a quarter of 14.2 GiB
    wait_until(lambda: mds.pods("qwen", "ray-worker"), 60, "a worker once the model fits")
    mds.delete("qwen")


def _tampered_copy(model: Path, target: Path) -> Path:
    shutil.copytree(model, target)
    weights = target / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    return target


def test_refused_weights_are_named_then_verified_weights_serve(
    start_operator: Callable[..., OperatorProcess],
    mds: ModelDeployments,
    local_ray: LocalRayHead,
    tiny_model: Path,
    tmp_path: Path,
) -> None:
    start_operator(local_ray)
    manifest = subprocess.run(
        [*DIGEST_COMMAND, str(tiny_model), "--revision", COMMIT],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    configmap(mds, "tiny-digests", "manifest.json", manifest)
    tampered = _tampered_copy(tiny_model, tmp_path / "tiny-tampered")
    spec = {
        "model": {
            "source": f"file://{tampered}",
            "servedModelName": "tiny",
            "revision": COMMIT,
            "digests": {"configMapRef": {"name": "tiny-digests", "key": "manifest.json"}},
        },
        "engine": TINY_ENGINE,
        "resources": TINY_RESOURCES,
        "scaling": {"minReplicas": 1, "maxReplicas": 1},
    }
    mds.create("pinned", spec)

    # The operator read config.json from the file:// folder: the tiny model fits an H100.
    fit = mds.wait_condition("pinned", "FitCheck", "True", "Passed", timeout=60)
    assert "1.6 MiB" in fit["message"]

    verified = mds.wait_condition("pinned", "ModelVerified", "False", "DigestMismatch", 300)
    good = sha256_file(tiny_model / "model.safetensors")
    bad = sha256_file(tampered / "model.safetensors")
    assert verified["message"] == f"model.safetensors: sha256 expected {good}, got {bad}"
    status = mds.get("pinned")["status"]
    # Refused: the pinned revision, and no verified digests (the replica's last reported step
    # may be there too, under `progress`).
    assert status["model"]["revision"] == COMMIT
    assert "verifiedDigests" not in status["model"]
    assert any(
        e.reason == "DigestMismatch" and "model.safetensors" in e.message
        for e in mds.events("pinned")
    )
    ready = mds.wait_condition("pinned", "Ready", "False", "ModelVerificationFailed", 300)
    assert good in ready["message"] and bad in ready["message"]

    # The audited bytes: verified by the replica, then served.
    mds.patch_spec("pinned", {"model": {"source": f"file://{tiny_model}"}})
    # While the new replica starts, the operator reads its last step out of its log (through
    # the head's dashboard) into status.model.progress and an event.
    wait_until(
        lambda: any(
            e.reason == "ModelProgress" and "verified 6 files" in e.message
            for e in mds.events("pinned")
        ),
        600,
        "a ModelProgress event with the verification",
    )
    mds.wait_condition("pinned", "ModelVerified", "True", "Verified", timeout=600)
    mds.wait_condition("pinned", "Ready", "True", "Serving", timeout=120)
    status = mds.get("pinned")["status"]
    assert status["model"]["revision"] == COMMIT
    assert status["model"]["verifiedDigests"]["model.safetensors"] == good
    assert status["model"]["verifiedDigests"] == json.loads(manifest)["files"]
    mds.delete("pinned")
