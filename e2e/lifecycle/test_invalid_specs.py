"""Specs the apiserver accepts and the operator refuses: the operator-level rows of the invalid-spec
table (tests/data/api-cases.yaml holds the schema and CEL rows, which never reach the operator).

Each row is a spec that passes the CRD's schema and rules, plus the objects it refers to (or not).
What only the operator can see refuses it: a Secret or key that is not there, a digest manifest
ConfigMap that is missing, unreadable or for another revision, a model that does not fit its GPUs
(preflight enforce). Every row must end with Ready=False and its reason, phase Failed, a condition
message and a warning Event that name the field, and no pod or Service created. One operator
serves the whole module (each row has its own namespace).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cluster.localcluster import LocalCluster, free_port, wait_until
from kubernetes import client

from .conftest import ModelDeployments
from .harness import ROOT, OperatorProcess
from .test_operator_faults import GPU_SPEC

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
QWEN_CONFIG = ROOT / "tests" / "data" / "models" / "qwen2.5-7b-instruct" / "config.json"
PINNED_MODEL = {
    "source": "pvc://models/llama-8b",
    "revision": COMMIT,
    "digests": {"configMapRef": {"name": "llama-digests", "key": "manifest.json"}},
}
OVERFLOW = {"baseUrl": "https://api.example.com/v1", "model": "gpt-4o-mini"}


@dataclass(frozen=True)
class Case:
    id: str
    spec: dict[str, Any]
    reason: str
    field: str
    """What the condition message and an Event must name."""
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    configmaps: dict[str, dict[str, str]] = field(default_factory=dict)

    def full_spec(self) -> dict[str, Any]:
        return {**GPU_SPEC, **self.spec}


CASES = [
    Case(
        "token-secret-missing",
        {"model": {"source": "hf://meta-llama/Llama-3.1-8B", "tokenSecretRef": {"name": "hf"}}},
        "InvalidSpec",
        "spec.model.tokenSecretRef: Secret 'hf' does not exist",
    ),
    Case(
        "token-key-missing",
        {"model": {"source": "hf://meta-llama/Llama-3.1-8B", "tokenSecretRef": {"name": "hf"}}},
        "InvalidSpec",
        "spec.model.tokenSecretRef: Secret 'hf' has no key 'token'",
        secrets={"hf": {"hf-token": "hf_e2e_invalid_specs_token"}},
    ),
    Case(
        "api-keys-secret-missing",
        {"endpoint": {"apiKeysSecretRef": {"name": "team-keys"}}},
        "InvalidSpec",
        "spec.endpoint.apiKeysSecretRef: Secret 'team-keys' does not exist",
    ),
    Case(
        "api-keys-key-missing",
        {"endpoint": {"apiKeysSecretRef": {"name": "team-keys"}}},
        "InvalidSpec",
        "spec.endpoint.apiKeysSecretRef: Secret 'team-keys' has no key 'api-keys'",
        secrets={"team-keys": {"keys.txt": "ck-e2e-invalid-specs-client-key"}},
    ),
    Case(
        "provider-key-secret-missing",
        {"overflow": {**OVERFLOW, "apiKeySecretRef": {"name": "provider", "key": "token"}}},
        "InvalidSpec",
        "spec.overflow.apiKeySecretRef: Secret 'provider' does not exist",
    ),
    Case(
        "provider-key-key-missing",
        {"overflow": {**OVERFLOW, "apiKeySecretRef": {"name": "provider", "key": "token"}}},
        "InvalidSpec",
        "spec.overflow.apiKeySecretRef: Secret 'provider' has no key 'token'",
        secrets={"provider": {"api-key": "pk-e2e-invalid-specs-provider-key"}},
    ),
    Case(
        "digests-configmap-missing",
        {"model": PINNED_MODEL},
        "InvalidSpec",
        "spec.model.digests.configMapRef: ConfigMap 'llama-digests' does not exist",
    ),
    Case(
        "digests-key-missing",
        {"model": PINNED_MODEL},
        "InvalidSpec",
        "spec.model.digests.configMapRef: ConfigMap 'llama-digests' has no key 'manifest.json'",
        configmaps={"llama-digests": {"digests.json": "{}"}},
    ),
    Case(
        "digests-manifest-unreadable",
        {"model": PINNED_MODEL},
        "InvalidSpec",
        "spec.model.digests.configMapRef: ConfigMap 'llama-digests' key 'manifest.json': line 1",
        configmaps={"llama-digests": {"manifest.json": "model.safetensors is fine"}},
    ),
    Case(
        "digests-manifest-empty",
        {"model": PINNED_MODEL},
        "InvalidSpec",
        "spec.model.digests.configMapRef: ConfigMap 'llama-digests' key 'manifest.json': "
        "expected digests, found none",
        configmaps={"llama-digests": {"manifest.json": json.dumps({"files": {}})}},
    ),
    Case(
        "digests-manifest-for-another-revision",
        {"model": PINNED_MODEL},
        "InvalidSpec",
        f"spec.model.digests.configMapRef: the manifest is for revision {OTHER_COMMIT}",
        configmaps={
            "llama-digests": {
                "manifest.json": json.dumps(
                    {"revision": OTHER_COMMIT, "files": {"model.safetensors": DIGEST}}
                )
            }
        },
    ),
    Case(
        "tensor-parallel-does-not-divide-heads",
        {
            "model": {"source": "hf://Qwen/Qwen2.5-7B-Instruct"},
            "engine": {"tensorParallelSize": 8},
            "resources": {"gpuProduct": "NVIDIA-H100-80GB-HBM3", "gpusPerWorker": 8},
            "preflight": {
                "configMapRef": {"name": "qwen-config", "key": "config.json"},
                "enforce": True,
            },
        },
        "FitCheckFailed",
        "tensorParallelSize 8 does not divide the model's 28 attention heads",
        configmaps={"qwen-config": {"config.json": QWEN_CONFIG.read_text()}},
    ),
]


@pytest.fixture(scope="module")
def module_operator(
    cluster: LocalCluster, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator for every row: rows differ only in what the operator reads."""
    closed = f"http://127.0.0.1:{free_port()}"  # no Ray: nothing here gets that far
    log_dir: Path = tmp_path_factory.mktemp("invalid-specs")
    operator = OperatorProcess(cluster.kubeconfig, closed, closed, 8000, log_dir)
    operator.start()
    yield operator
    operator.stop()


def _configmap(mds: ModelDeployments, name: str, data: dict[str, str]) -> None:
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)
    mds.core.create_namespaced_config_map(mds.namespace, body)


def _create_referenced(mds: ModelDeployments, case: Case) -> None:
    for name, data in case.secrets.items():
        body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
        mds.core.create_namespaced_secret(mds.namespace, body)
    for name, data in case.configmaps.items():
        _configmap(mds, name, data)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_operator_refuses(
    module_operator: OperatorProcess, mds: ModelDeployments, case: Case
) -> None:
    _create_referenced(mds, case)
    mds.create("refused", case.full_spec())

    ready = mds.wait_condition("refused", "Ready", "False", case.reason, timeout=90)
    assert case.field in ready["message"], ready
    status = mds.get("refused")["status"]
    assert status["phase"] == "Failed", status
    degraded = mds.condition("refused", "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", case.reason), degraded

    events = [e for e in mds.events("refused") if e.type == "Warning"]
    assert any(e.reason == case.reason and case.field in e.message for e in events), [
        (e.reason, e.message) for e in events
    ]
    # Several resyncs later (every 2 s), still nothing was created.
    time.sleep(5)
    assert mds.pods("refused") == [] and mds.services("refused") == []
    assert mds.condition("refused", "Ready")["reason"] == case.reason
    # The values of the Secrets it names stay out of what the operator wrote.
    written = json.dumps(mds.get("refused")["status"]) + " ".join(
        e.message or "" for e in mds.events("refused")
    )
    for data in case.secrets.values():
        for value in data.values():
            assert value not in written
    assert module_operator.proc is not None and module_operator.proc.poll() is None


def test_a_config_json_with_zero_heads_is_reported_not_fatal(
    module_operator: OperatorProcess, mds: ModelDeployments
) -> None:
    """Once a ZeroDivisionError inside the reconcile: no status at all, retried forever. Now a
    malformed config.json is what any unreadable one is: FitCheck Unknown, naming the field."""
    config = {**json.loads(QWEN_CONFIG.read_text()), "num_attention_heads": 0}
    _configmap(mds, "qwen-config", {"config.json": json.dumps(config)})
    spec = {
        **GPU_SPEC,
        "preflight": {"configMapRef": {"name": "qwen-config", "key": "config.json"}},
    }
    mds.create("zero-heads", spec)
    fit = mds.wait_condition("zero-heads", "FitCheck", "Unknown", "NoModelConfig", timeout=90)
    assert "spec.preflight.configMapRef" in fit["message"], fit
    assert "expected num_attention_heads to be at least 1" in fit["message"], fit
    wait_until(lambda: mds.pods("zero-heads"), 60, "the children of a spec that is not refused")


def test_an_unknown_gpu_product_is_not_refused(
    module_operator: OperatorProcess, mds: ModelDeployments
) -> None:
    """Not a row of the table: the operator accepts a gpuProduct it has no memory figure for
    (a new GPU must not need an operator release). The fit check says so, and the scheduler's
    own message says why no worker runs when no node carries that product."""
    _configmap(mds, "qwen-config", {"config.json": QWEN_CONFIG.read_text()})
    spec = {
        **GPU_SPEC,
        "resources": {**GPU_SPEC["resources"], "gpuProduct": "NVIDIA-Imaginary-1TB"},
        "preflight": {"configMapRef": {"name": "qwen-config", "key": "config.json"}},
    }
    mds.create("future-gpu", spec)
    fit = mds.wait_condition("future-gpu", "FitCheck", "Unknown", "UnknownGPU", timeout=90)
    assert "resources.gpuMemory" in fit["message"], fit

    def scheduler_reason() -> dict[str, Any] | None:
        ready = mds.condition("future-gpu", "Ready")
        return ready if ready.get("reason") in {"InsufficientGPU", "Unschedulable"} else None

    ready = wait_until(scheduler_reason, 120, "the scheduler's reason on Ready")
    assert ready["status"] == "False" and "node" in ready["message"], ready
    assert mds.get("future-gpu")["status"]["phase"] != "Failed"
