"""The preflight fit check on the shipped configs (tests/data/models) against published figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy_operator.api import ModelDeployment
from modeldeploy_operator.decide.gpus import gpu_memory_bytes
from modeldeploy_operator.decide.model_checks import engine_settings, fit_check
from modeldeploy_operator.decide.preflight import (
    GIB,
    Architecture,
    EngineSettings,
    architecture_from_config,
    check_fit,
    estimate_weights,
)
from tests.operator_factories import make_md

ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT / "tests" / "data" / "models"
H100 = "NVIDIA-H100-80GB-HBM3"
GPUS_24GB = ["NVIDIA-L4", "NVIDIA-A10G", "NVIDIA-GeForce-RTX-4090"]


def arch(name: str) -> Architecture:
    return architecture_from_config(json.loads((MODELS / name / "config.json").read_text()))


def on(gpu: str, **engine: Any) -> EngineSettings:
    return EngineSettings(gpu_product=gpu, gpu_memory=gpu_memory_bytes(gpu), **engine)


def example(name: str) -> ModelDeployment:
    return ModelDeployment.model_validate(yaml.safe_load((ROOT / "examples" / name).read_text()))


@pytest.mark.parametrize(
    ("model", "parameters"),
    [
        ("gpt-oss-20b", 20.9e9),
        ("gpt-oss-120b", 116.8e9),
        ("llama-3.1-8b-instruct", 8.03e9),
        ("qwen2.5-7b-instruct", 7.61e9),
    ],
)
def test_parameter_counts_match_the_model_cards(model: str, parameters: float) -> None:
    counted = estimate_weights(arch(model), EngineSettings()).parameters
    assert counted == pytest.approx(parameters, rel=0.01)


@pytest.mark.parametrize(
    ("model", "published_gb", "checkpoint_gib"),
    # Published needs: about 16 GB and 60 GB (OpenAI); checkpoint sizes on the model card:
    # 12.8 GiB and 60.8 GiB, MXFP4 experts with everything else in bfloat16.
    [("gpt-oss-20b", 16, 12.8), ("gpt-oss-120b", 60, 60.8)],
)
def test_gpt_oss_weights_are_within_15_percent_of_published_needs(
    model: str, published_gb: float, checkpoint_gib: float
) -> None:
    weights = estimate_weights(arch(model), EngineSettings()).bytes
    assert weights / 1e9 == pytest.approx(published_gb, rel=0.15)
    assert weights / GIB == pytest.approx(checkpoint_gib, rel=0.01)


def test_mxfp4_quantizes_the_experts_only() -> None:
    gpt_oss = arch("gpt-oss-20b")
    assert gpt_oss.quantization == "mxfp4" and gpt_oss.num_experts == 32
    assert gpt_oss.sliding_layers == 12 and gpt_oss.sliding_window == 128
    unquantized = estimate_weights(gpt_oss, EngineSettings(quantization="none")).bytes
    assert unquantized / 1e9 == pytest.approx(41.8, rel=0.02)  # 20.9B parameters x 2 bytes


def test_gpt_oss_120b_fits_one_h100_and_not_one_24gb_gpu() -> None:
    sized = {"max_model_len": 32768, "max_num_seqs": 8, "gpu_memory_utilization": 0.95}
    h100 = check_fit(arch("gpt-oss-120b"), on(H100, **sized))
    assert h100.verdict == "Passed", h100.message
    for gpu in GPUS_24GB:
        report = check_fit(arch("gpt-oss-120b"), on(gpu, **sized))
        assert report.verdict == "Failed", gpu
        assert "the weights do not fit" in report.message
        assert "60.7 GiB" in report.message and gpu in report.message


def test_gpt_oss_20b_fits_an_h100_and_a_24gb_gpu() -> None:
    h100 = check_fit(arch("gpt-oss-20b"), on(H100, max_model_len=131072, max_num_seqs=16))
    assert h100.verdict == "Passed", h100.message
    for gpu in GPUS_24GB:
        report = check_fit(arch("gpt-oss-20b"), on(gpu, max_model_len=32768, max_num_seqs=6))
        assert report.verdict == "Passed", (gpu, report.message)
        assert report.weights_per_gpu / GIB == pytest.approx(12.8, abs=0.1)


def test_too_many_long_sequences_warn_with_the_numbers() -> None:
    report = check_fit(
        arch("gpt-oss-120b"),
        on(H100, max_model_len=131072, max_num_seqs=64, gpu_memory_utilization=0.95),
    )
    assert report.verdict == "Warning"
    assert report.sequences_at_full_length == 2
    assert "2 of maxNumSeqs 64 sequences fit at full length" in report.message
    assert "4.5 GiB per GPU for one 131072-token sequence" in report.message


def test_a_context_that_leaves_no_room_for_one_sequence_fails() -> None:
    report = check_fit(arch("llama-3.1-8b-instruct"), on("NVIDIA-L4", max_model_len=131072))
    assert report.verdict == "Failed"
    assert "not one maxModelLen sequence fits" in report.message
    assert "16.0 GiB per GPU for one 131072-token sequence" in report.message


def test_tensor_parallel_size_must_divide_the_heads() -> None:
    report = check_fit(arch("qwen2.5-7b-instruct"), on(H100, tensor_parallel_size=8))
    assert report.verdict == "Failed"
    assert "tensorParallelSize 8 does not divide the model's 28 attention heads" in report.message
    # Qwen2.5-7B has 4 KV heads: 3 GPUs split neither.
    three = check_fit(arch("qwen2.5-7b-instruct"), on(H100, tensor_parallel_size=3))
    assert "tensorParallelSize 3 and the model's 4 KV heads" in three.message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("num_attention_heads", 0),
        ("num_key_value_heads", 0),
        ("num_hidden_layers", -32),
        ("head_dim", 0),
        ("hidden_size", 0),
        ("vocab_size", -1),
    ],
)
def test_a_size_below_one_is_a_named_error_not_nonsense_figures(key: str, value: int) -> None:
    config = json.loads((MODELS / "qwen2.5-7b-instruct" / "config.json").read_text())
    with pytest.raises(ValueError, match=f"expected {key} to be at least 1, got {value}"):
        architecture_from_config({**config, key: value})


def test_tensor_parallelism_splits_weights_and_kv_heads() -> None:
    one = check_fit(arch("qwen2.5-7b-instruct"), on("NVIDIA-L4", max_model_len=16384))
    two = check_fit(
        arch("qwen2.5-7b-instruct"), on("NVIDIA-L4", max_model_len=16384, tensor_parallel_size=2)
    )
    assert two.weights_per_gpu == pytest.approx(one.weights_per_gpu / 2)
    assert two.kv_per_sequence_per_gpu == pytest.approx(one.kv_per_sequence_per_gpu / 2)


def test_unknown_gpu_is_unknown_with_the_model_numbers() -> None:
    report = check_fit(arch("gpt-oss-20b"), EngineSettings(gpu_product="Acme-GPU"))
    assert report.verdict == "Unknown"
    assert "set resources.gpuMemory" in report.message and "12.8 GiB" in report.message
    assert fit_check(report).reason == "UnknownGPU"


def test_max_model_len_beyond_the_context_fails() -> None:
    report = check_fit(arch("qwen2.5-7b-instruct"), on(H100, max_model_len=65536))
    assert report.verdict == "Failed"
    assert "maxModelLen 65536 exceeds the model's context of 32768 tokens" in report.message


def test_engine_settings_come_from_the_spec() -> None:
    md = make_md(
        {
            "engine": {"tensorParallelSize": 2, "maxModelLen": 4096, "kvCacheDtype": "fp8"},
            "resources": {"gpuProduct": "Acme-GPU", "gpuMemory": "48Gi"},
        }
    )
    settings = engine_settings(md.spec)
    assert settings.gpu_memory == 48 * GIB and settings.tensor_parallel_size == 2
    assert settings.kv_cache_dtype == "fp8" and settings.max_model_len == 4096
    assert engine_settings(make_md({"resources": {"gpuProduct": H100}}).spec).gpu_memory == (
        81559 * 1024 * 1024
    )


@pytest.mark.parametrize(
    ("file", "model"),
    [
        ("gpt-oss-20b.yaml", "gpt-oss-20b"),
        ("gpt-oss-20b-24gb.yaml", "gpt-oss-20b"),
        ("gpt-oss-120b.yaml", "gpt-oss-120b"),
        ("llama-3.1-8b-instruct.yaml", "llama-3.1-8b-instruct"),
        ("qwen2.5-7b-instruct.yaml", "qwen2.5-7b-instruct"),
    ],
)
def test_presets_pass_the_fit_check(file: str, model: str) -> None:
    md = example(file)
    report = check_fit(arch(model), engine_settings(md.spec))
    assert report.verdict == "Passed", report.message


def test_gpt_oss_120b_preset_does_not_fit_a_24gb_gpu() -> None:
    spec = example("gpt-oss-120b.yaml").spec
    spec.resources.gpu_product = "NVIDIA-L4"
    assert check_fit(arch("gpt-oss-120b"), engine_settings(spec)).verdict == "Failed"
