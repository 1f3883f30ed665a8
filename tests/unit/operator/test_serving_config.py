"""ModelDeployment spec -> ServingConfig."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy_operator.builders.serving_config import (
    build_serving_config,
    load_serving_config,
    model_location,
)
from tests.operator_factories import make_md


@pytest.mark.parametrize(
    ("source", "location"),
    [
        ("hf://openai/gpt-oss-20b", "openai/gpt-oss-20b"),
        ("file:///models/tiny", "/models/tiny"),
        ("pvc://weights/llama/8b", "/models/weights/llama/8b"),
        ("s3://bucket/llama", "s3://bucket/llama"),
        ("gs://bucket/llama", "gs://bucket/llama"),
    ],
)
def test_model_location(source: str, location: str) -> None:
    assert model_location(source) == location


def test_engine_fields_map_one_to_one() -> None:
    md = make_md(
        {
            "model": {"revision": "a" * 40, "servedModelName": "oss"},
            "engine": {
                "tensorParallelSize": 2,
                "maxModelLen": 8192,
                "dtype": "bfloat16",
                "quantization": "mxfp4",
                "kvCacheDtype": "fp8",
                "gpuMemoryUtilization": 0.85,
                "maxNumSeqs": 64,
                "enablePrefixCaching": False,
                "toolCallParser": "openai",
                "enableAutoToolChoice": True,
                "reasoningParser": "openai_gptoss",
                "extraArgs": ["--max-num-batched-tokens", "4096"],
            },
        }
    )
    config = build_serving_config(md)
    args = config.vllm_args()
    assert config.served_model_name == "oss" and config.revision == "a" * 40
    assert config.gpus_per_replica == 2 and config.accelerator == "gpu"
    for flag, value in {
        "--model": "openai/gpt-oss-20b",
        "--tensor-parallel-size": "2",
        "--max-model-len": "8192",
        "--dtype": "bfloat16",
        "--quantization": "mxfp4",
        "--kv-cache-dtype": "fp8",
        "--gpu-memory-utilization": "0.85",
        "--max-num-seqs": "64",
        "--tool-call-parser": "openai",
        "--reasoning-parser": "openai_gptoss",
    }.items():
        assert args[args.index(flag) + 1] == value, flag
    assert "--no-enable-prefix-caching" in args and "--enable-auto-tool-choice" in args
    assert args[-2:] == ["--max-num-batched-tokens", "4096"]


def test_replica_resources() -> None:
    cpu = build_serving_config(make_md({"resources": {"accelerator": "cpu", "cpu": "6"}}))
    assert (cpu.accelerator, cpu.gpus_per_replica, cpu.cpus_per_replica) == ("cpu", 0, 6)
    shared = build_serving_config(make_md({"resources": {"gpusPerWorker": 4, "cpu": "16"}}))
    assert (shared.gpus_per_replica, shared.cpus_per_replica) == (1, 4)


def test_scaling_mode() -> None:
    queue = build_serving_config(
        make_md({"scaling": {"minReplicas": 0, "maxReplicas": 3, "scaleDownDelaySeconds": 60}})
    )
    assert queue.num_replicas is None and queue.autoscaling is not None
    assert (queue.autoscaling.min_replicas, queue.autoscaling.max_replicas) == (0, 3)
    assert queue.autoscaling.scale_down_delay_s == 60
    external = build_serving_config(
        make_md({"scaling": {"mode": "external", "replicas": 2, "maxReplicas": 2}})
    )
    assert (external.num_replicas, external.autoscaling) == (2, None)
    # Equal bounds still run the policy, so that moving a bound later restarts nothing.
    fixed = build_serving_config(make_md({"scaling": {"minReplicas": 2, "maxReplicas": 2}}))
    assert fixed.num_replicas is None and fixed.autoscaling is not None
    assert (fixed.autoscaling.min_replicas, fixed.autoscaling.max_replicas) == (2, 2)


DIGEST = "a" * 64
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_digests_travel_to_the_replicas() -> None:
    inline = make_md(
        {
            "model": {
                "source": "file:///models/tiny",
                "revision": COMMIT,
                "digests": {"files": {"model.safetensors": DIGEST}},
            }
        }
    )
    config = build_serving_config(inline)
    assert config.verify is not None
    assert (config.verify.revision, config.verify.digests) == (
        COMMIT,
        {"model.safetensors": DIGEST},
    )
    # Only a hub download uses the revision; for a folder it labels the digests.
    assert config.revision is None and "--revision" not in config.vllm_args()
    hub = make_md({"model": {"source": "hf://org/model", "revision": COMMIT}})
    assert build_serving_config(hub).revision == COMMIT and build_serving_config(hub).verify is None


def test_digests_from_a_configmap_manifest() -> None:
    md = make_md(
        {
            "model": {
                "revision": COMMIT,
                "digests": {"configMapRef": {"name": "digests", "key": "manifest.json"}},
            }
        }
    )
    config = build_serving_config(md, {"config.json": DIGEST})
    assert config.verify is not None and config.verify.digests == {"config.json": DIGEST}
    with pytest.raises(ValueError, match="configMapRef"):
        build_serving_config(md)


def test_a_local_run_needs_inline_digests(tmp_path: Path) -> None:
    file = tmp_path / "md.yaml"
    file.write_text(
        "apiVersion: modeldeploy.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: x}\n"
        "spec:\n  model:\n    source: file:///models/x\n"
        f"    revision: '{COMMIT}'\n"
        "    digests: {configMapRef: {name: d, key: manifest.json}}\n"
    )
    with pytest.raises(ValueError, match="a local run reads no ConfigMaps"):
        load_serving_config(file)
