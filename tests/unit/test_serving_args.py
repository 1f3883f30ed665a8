"""ServingConfig: validation, the exact vLLM argument list, and the Serve deployment options."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from modeldeploy_serving.app import deployment_options
from modeldeploy_serving.config import EngineConfig, ServingConfig, vllm_cli_args
from modeldeploy_serving.ingress import INGRESS_MODES, ingress_env


def cpu_config(**overrides: object) -> ServingConfig:
    fields: dict[str, object] = {
        "model": "/models/tiny",
        "served_model_name": "tiny",
        "accelerator": "cpu",
        "gpus_per_replica": 0,
    }
    fields.update(overrides)
    return ServingConfig.model_validate(fields)


def test_minimal_gpu_args_are_exact() -> None:
    config = ServingConfig(model="openai/gpt-oss-20b", served_model_name="gpt-oss-20b")
    assert vllm_cli_args(config) == [
        "--model",
        "openai/gpt-oss-20b",
        "--served-model-name",
        "gpt-oss-20b",
        "--tensor-parallel-size",
        "1",
        "--pipeline-parallel-size",
        "1",
        "--dtype",
        "auto",
        "--kv-cache-dtype",
        "auto",
    ]


def test_every_engine_field_maps_to_its_flag_and_extra_args_come_last() -> None:
    engine = EngineConfig(
        tensor_parallel_size=2,
        pipeline_parallel_size=2,
        max_model_len=8192,
        dtype="bfloat16",
        quantization="fp8",
        kv_cache_dtype="fp8",
        gpu_memory_utilization=0.85,
        max_num_seqs=128,
        enable_prefix_caching=False,
        enforce_eager=True,
        tool_call_parser="openai",
        enable_auto_tool_choice=True,
        reasoning_parser="openai_gptoss",
        extra_args=["--max-model-len", "4096"],
    )
    config = ServingConfig(
        model="m", served_model_name="n", revision="abc", engine=engine, gpus_per_replica=4
    )
    assert config.vllm_args() == [
        "--model", "m", "--served-model-name", "n", "--revision", "abc",
        "--tensor-parallel-size", "2", "--pipeline-parallel-size", "2",
        "--max-model-len", "8192", "--dtype", "bfloat16", "--quantization", "fp8",
        "--kv-cache-dtype", "fp8", "--gpu-memory-utilization", "0.85", "--max-num-seqs", "128",
        "--no-enable-prefix-caching", "--enforce-eager", "--tool-call-parser", "openai",
        "--enable-auto-tool-choice", "--reasoning-parser", "openai_gptoss",
        "--distributed-executor-backend", "mp", "--max-model-len", "4096",
    ]  # fmt: skip


def test_prefix_caching_true_and_unset() -> None:
    assert (
        "--enable-prefix-caching" in cpu_config(engine={"enable_prefix_caching": True}).vllm_args()
    )
    assert not any("prefix-caching" in arg for arg in cpu_config().vllm_args())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"accelerator": "gpu", "gpus_per_replica": 1, "engine": {"tensor_parallel_size": 2}},
         "must equal tensor_parallel_size"),
        ({"gpus_per_replica": 1}, "accelerator cpu needs gpus_per_replica=0"),
        ({"num_replicas": None}, "exactly one of num_replicas and autoscaling"),
        ({"autoscaling": {"min_replicas": 1, "max_replicas": 2}},
         "exactly one of num_replicas and autoscaling"),
        ({"engine": {"enable_auto_tool_choice": True}}, "needs tool_call_parser"),
        ({"engine": {"gpu_memory_utilization": 1.5}}, "less than or equal to 1"),
        ({"unknown": 1}, "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_invalid_configs_say_why(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        cpu_config(**overrides)


def test_json_round_trip_is_canonical() -> None:
    config = cpu_config(engine={"max_model_len": 256}, env={"B": "2", "A": "1"})
    again = ServingConfig.model_validate_json(config.to_json())
    assert again == config
    assert again.to_json() == config.to_json()


def test_max_ongoing_requests_follows_the_engine_batch() -> None:
    # One batch running and one waiting in the engine's queue, where the policy reads the backlog.
    assert cpu_config().effective_max_ongoing_requests == 512
    assert cpu_config(engine={"max_num_seqs": 32}).effective_max_ongoing_requests == 64
    config = cpu_config(engine={"max_num_seqs": 32}, max_ongoing_requests=40)
    assert config.effective_max_ongoing_requests == 40


def test_gpu_replica_reserves_its_gpus_as_one_packed_bundle() -> None:
    config = ServingConfig(
        model="m",
        served_model_name="n",
        gpus_per_replica=2,
        cpus_per_replica=4,
        engine=EngineConfig(tensor_parallel_size=2, max_num_seqs=64),
        env={"VLLM_LOGGING_LEVEL": "INFO"},
    )
    options = deployment_options(config)
    assert options["placement_group_bundles"] == [{"CPU": 4.0, "GPU": 2.0}]
    assert options["placement_group_strategy"] == "STRICT_PACK"
    assert options["ray_actor_options"] == {
        "num_cpus": 4.0,
        "num_gpus": 2,
        "runtime_env": {"env_vars": {"VLLM_LOGGING_LEVEL": "INFO"}},
    }
    assert options["max_ongoing_requests"] == 128
    assert options["num_replicas"] == 1
    assert "autoscaling_config" not in options


def test_cpu_replica_reserves_cpus_only_and_autoscaling_bounds_pass_through() -> None:
    options = deployment_options(
        cpu_config(
            num_replicas=None,
            autoscaling={"min_replicas": 1, "max_replicas": 3},
            cpus_per_replica=2,
        )
    )
    assert options["ray_actor_options"] == {"num_cpus": 2.0}
    assert "placement_group_bundles" not in options
    assert "num_replicas" not in options
    assert options["autoscaling_config"]["min_replicas"] == 1
    assert options["autoscaling_config"]["max_replicas"] == 3
    assert options["autoscaling_config"]["upscale_delay_s"] == 0
    assert options["backpressure_config"] == {"status_code": 429, "retry_after_s": 5}


def test_ingress_modes() -> None:
    assert ingress_env("proxy")["RAY_SERVE_ENABLE_HA_PROXY"] == "0"
    assert ingress_env("direct")["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    assert ingress_env("haproxy")["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert ingress_env("haproxy-throughput")["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    assert ingress_env("haproxy-mainloop")["RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"] == "0"
    assert set(INGRESS_MODES) == {
        "proxy",
        "direct",
        "haproxy",
        "haproxy-mainloop",
        "haproxy-throughput",
    }


def test_importing_the_config_imports_neither_ray_nor_vllm() -> None:
    code = (
        "import sys, modeldeploy_serving.config, modeldeploy_serving.app, "
        "modeldeploy_serving.ingress; "
        "print(sorted(m for m in ('ray', 'vllm', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _md(spec: dict[str, object]) -> ServingConfig:
    from modeldeploy_operator.api import ModelDeployment
    from modeldeploy_operator.builders.serving_config import build_serving_config

    document = {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment"}
    md = ModelDeployment.model_validate({**document, "metadata": {"name": "m"}, "spec": spec})
    return build_serving_config(md)


def test_a_replica_spanning_worker_pods_uses_the_ray_executor() -> None:
    spec: dict[str, object] = {
        "model": {"source": "hf://openai/gpt-oss-120b"},
        "engine": {"tensorParallelSize": 4},
        "resources": {"gpusPerWorker": 2},
    }
    spanning = _md(spec)
    assert spanning.distributed_executor_backend == "ray"
    assert spanning.vllm_args()[-2:] == ["--distributed-executor-backend", "ray"]
    bundles = deployment_options(spanning)["placement_group_bundles"]
    assert bundles == [{"CPU": spanning.cpus_per_replica}] + [{"GPU": 1.0}] * 4
    assert deployment_options(spanning)["placement_group_strategy"] == "PACK"
    packed = _md({**spec, "resources": {"gpusPerWorker": 4}})
    assert packed.distributed_executor_backend == "mp"


def test_object_store_sources_are_streamed() -> None:
    config = _md({"model": {"source": "s3://bucket/llama"}})
    assert config.model == "s3://bucket/llama"
    assert config.vllm_args()[-2:] == ["--load-format", "runai_streamer"]


def test_the_local_example_runs_on_the_cpu_engine() -> None:
    from pathlib import Path

    from modeldeploy_operator.builders.serving_config import load_serving_config

    example = Path(__file__).resolve().parents[2] / "examples" / "tiny-cpu.yaml"
    config = load_serving_config(example)
    assert config.accelerator == "cpu" and config.gpus_per_replica == 0
    assert config.model.startswith("/") and config.served_model_name == "tiny-llama"
    assert "--enforce-eager" in config.vllm_args()
    assert "placement_group_bundles" not in deployment_options(config)


def test_local_ray_env_keeps_two_local_servers_apart(tmp_path: object) -> None:
    from pathlib import Path

    from modeldeploy_serving.local import local_ray_env

    scratch = Path(str(tmp_path))
    direct = local_ray_env("direct", scratch, 9100)
    assert direct["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] == "9100"
    haproxy = local_ray_env("haproxy", scratch, 9100)
    assert haproxy["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"].startswith(str(scratch))
    assert haproxy["RAY_SERVE_HAPROXY_STATS_PORT"] != "8404"
    assert "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC" not in local_ray_env("proxy", scratch, 9100)
    # The engines' ZMQ sockets go with the scratch folder instead of staying in /tmp.
    assert direct["VLLM_RPC_BASE_PATH"] == haproxy["VLLM_RPC_BASE_PATH"] == str(scratch)
