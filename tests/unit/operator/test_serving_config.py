"""ModelDeployment spec -> ServingConfig."""

from __future__ import annotations

import pytest

from modeldeploy_operator.serving_config import build_serving_config, model_location
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
