"""Preflight: will this model fit these GPUs with these engine settings? Answered from config.json.

A replica that does not fit fails only after its worker pods were scheduled, the image pulled and
tens of gigabytes of weights downloaded, an hour later. The arithmetic needs only the model's
`config.json` (layers, hidden size, heads, KV heads, vocabulary, experts, dtype, quantization),
so the operator does it before creating any worker pod, and `modeldeploy validate` does the same
for a local file. Everything here is pure.

How the estimate is made, and why:
- Weights are counted parameter group by parameter group (embeddings, attention, MLP or experts,
  router), each at the bytes it is stored in: MXFP4 checkpoints (gpt-oss) store only the expert
  weights as 4-bit values with one 8-bit scale per 32 (4.25 bits), attention and embeddings stay
  in bfloat16; FP8, AWQ/GPTQ and bitsandbytes quantize every linear layer. On gpt-oss-20b and
  -120b this lands within 1% of the published checkpoint sizes.
- The KV cache per token is 2 (K and V) x KV heads x head size x bytes, per layer; layers with
  sliding-window attention (gpt-oss alternates them) hold at most the window per sequence.
- One GPU holds 1 / (tensor x pipeline parallel) of the weights and of the layers, and its share
  of the KV heads (a KV head is replicated when there are more GPUs than KV heads).
- vLLM may use gpuMemoryUtilization x the GPU's memory for weights, activations, CUDA graphs and
  the KV cache. Activations and graphs are charged as a flat RUNTIME_OVERHEAD (vLLM measures
  them in a profile run; a few GiB for these models).
- Failed: the weights do not fit, or not even one sequence of maxModelLen tokens fits the KV
  cache (vLLM refuses to start), or the tensor-parallel size does not divide the attention heads
  (or the KV heads), or maxModelLen exceeds the model's context. Warning: it starts, but fewer
  than maxNumSeqs sequences of maxModelLen tokens fit at once (long requests then wait or are
  preempted). Unknown: the GPU's memory is not known.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

GIB = 1024**3
RUNTIME_OVERHEAD = 2 * GIB
VLLM_DEFAULT_MAX_NUM_SEQS = 256
DTYPE_BYTES = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0, "half": 2.0, "float": 4.0}
KV_DTYPE_BYTES = {"fp8": 1.0, "fp8_e4m3": 1.0, "fp8_e5m2": 1.0, "bfloat16": 2.0}
MXFP4_BITS = 4.25  # 4-bit values plus one 8-bit (E8M0) scale per block of 32

Verdict = Literal["Passed", "Warning", "Failed", "Unknown"]


@dataclass(frozen=True)
class Architecture:
    """The numbers of a model's config.json that memory depends on."""

    model_type: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    intermediate_size: int
    num_experts: int
    """0 for a dense model."""
    expert_intermediate_size: int
    shared_expert_intermediate_size: int
    tie_word_embeddings: bool
    dtype: str
    quantization: str | None
    quantization_config: Mapping[str, Any] = field(default_factory=dict)
    max_position_embeddings: int | None = None
    sliding_window: int | None = None
    sliding_layers: int = 0


def _int(
    config: Mapping[str, Any], *keys: str, default: int | None = None, minimum: int = 1
) -> int:
    """The first of `keys` that holds an integer; a size below `minimum` is refused here, naming
    its key, since every later step multiplies or divides by it."""
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < minimum:
                raise ValueError(
                    f"config.json: expected {key} to be at least {minimum}, got {value}"
                )
            return value
    if default is not None:
        return default
    raise ValueError(f"config.json: expected an integer {' or '.join(keys)}")


def architecture_from_config(config: Mapping[str, Any]) -> Architecture:
    """Read the numbers from a parsed config.json; ValueError names a missing key."""
    text = config.get("text_config")
    if isinstance(text, Mapping) and "num_hidden_layers" not in config:
        config = {**config, **text}  # multimodal models nest the language model's numbers
    hidden = _int(config, "hidden_size", "n_embd", "d_model")
    heads = _int(config, "num_attention_heads", "n_head")
    kv_heads = _int(config, "num_key_value_heads", "num_kv_heads", default=heads)
    intermediate = _int(config, "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden)
    experts = _int(
        config, "num_local_experts", "num_experts", "n_routed_experts", default=0, minimum=0
    )
    quant = config.get("quantization_config")
    quant = quant if isinstance(quant, Mapping) else {}
    layer_types = config.get("layer_types")
    sliding = (
        sum(1 for t in layer_types if t == "sliding_attention")
        if isinstance(layer_types, list)
        else 0
    )
    window = config.get("sliding_window")
    dtype = config.get("torch_dtype") or config.get("dtype") or "bfloat16"
    return Architecture(
        model_type=str(config.get("model_type", "unknown")),
        num_layers=_int(config, "num_hidden_layers", "n_layer", "num_layers"),
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=_int(config, "head_dim", default=hidden // heads),
        vocab_size=_int(config, "vocab_size"),
        intermediate_size=intermediate,
        num_experts=experts,
        expert_intermediate_size=_int(config, "moe_intermediate_size", default=intermediate),
        shared_expert_intermediate_size=_int(
            config, "shared_expert_intermediate_size", default=0, minimum=0
        ),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        dtype=str(dtype),
        quantization=str(quant["quant_method"]) if "quant_method" in quant else None,
        quantization_config=dict(quant),
        max_position_embeddings=config.get("max_position_embeddings"),
        sliding_window=window if isinstance(window, int) and sliding else None,
        sliding_layers=sliding if isinstance(window, int) else 0,
    )


@dataclass(frozen=True)
class EngineSettings:
    """What the fit depends on besides the model (from the spec's engine and resources)."""

    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    dtype: str = "auto"
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    gpu_memory_utilization: float = 0.9
    accelerator: Literal["gpu", "cpu"] = "gpu"
    gpu_product: str | None = None
    gpu_memory: int | None = None
    """Bytes of one GPU; None when unknown."""


@dataclass(frozen=True)
class WeightBytes:
    parameters: int
    bytes: float


@dataclass(frozen=True)
class FitReport:
    """The verdict and every number behind it (bytes per GPU unless named total)."""

    verdict: Verdict
    message: str
    parameters: int
    weights_total: float
    weights_per_gpu: float
    runtime_per_gpu: float
    kv_per_sequence_per_gpu: float
    max_model_len: int
    max_num_seqs: int
    budget_per_gpu: float | None = None
    kv_free_per_gpu: float | None = None
    sequences_at_full_length: int | None = None
    problems: tuple[str, ...] = ()


def _weight_dtype_bytes(arch: Architecture, settings: EngineSettings) -> float:
    dtype = arch.dtype if settings.dtype == "auto" else settings.dtype
    if settings.dtype == "auto" and dtype == "float32" and settings.accelerator == "gpu":
        dtype = "bfloat16"  # vLLM's "auto" serves float32 checkpoints in 16 bits on GPUs
    return DTYPE_BYTES.get(dtype, 2.0)


def _quantized_bits(method: str, qconfig: Mapping[str, Any]) -> float | None:
    """Bits per weight of a quantized linear layer, scales included; None if not known."""
    if method == "mxfp4":
        return MXFP4_BITS
    if method in {"fp8", "fbgemm_fp8", "modelopt", "ptpc_fp8"}:
        return 8.0
    if method in {"awq", "awq_marlin", "gptq", "gptq_marlin", "marlin"}:
        bits = int(qconfig.get("bits", qconfig.get("w_bit", 4)))
        group = int(qconfig.get("group_size", qconfig.get("q_group_size", 128)))
        # An fp16 scale and a packed zero point per group.
        return bits + (16 + bits) / group if group > 0 else float(bits)
    if method == "bitsandbytes":
        return 4.5 if qconfig.get("load_in_4bit") else 8.0
    return None


def estimate_weights(arch: Architecture, settings: EngineSettings) -> WeightBytes:
    """Parameters and bytes of the whole model (all GPUs of one replica together)."""
    h = arch.hidden_size
    q_dim = arch.num_heads * arch.head_dim
    kv_dim = arch.num_kv_heads * arch.head_dim
    embed = arch.vocab_size * h * (1 if arch.tie_word_embeddings else 2)
    attention = arch.num_layers * (2 * h * q_dim + 2 * h * kv_dim)
    norms = arch.num_layers * 2 * h + h
    if arch.num_experts:
        mlp = arch.num_layers * (
            arch.num_experts * 3 * h * arch.expert_intermediate_size
            + 3 * h * arch.shared_expert_intermediate_size
        )
        router = arch.num_layers * h * arch.num_experts
    else:
        mlp, router = arch.num_layers * 3 * h * arch.intermediate_size, 0
    dtype = _weight_dtype_bytes(arch, settings)
    method = settings.quantization or arch.quantization
    bits = _quantized_bits(method, arch.quantization_config) if method else None
    quantized = dtype if bits is None else bits / 8
    # MXFP4 checkpoints quantize the MLP (the experts) only; the other methods every linear layer.
    attention_bytes = dtype if method == "mxfp4" else quantized
    total = (embed + norms + router) * dtype + attention * attention_bytes + mlp * quantized
    return WeightBytes(parameters=embed + attention + norms + mlp + router, bytes=total)


def kv_bytes_per_sequence_per_gpu(
    arch: Architecture, settings: EngineSettings, tokens: int
) -> float:
    """KV cache one sequence of `tokens` tokens takes on one GPU of a replica."""
    if settings.kv_cache_dtype in KV_DTYPE_BYTES:
        element = KV_DTYPE_BYTES[settings.kv_cache_dtype]
    else:
        element = _weight_dtype_bytes(arch, settings)
    heads = math.ceil(arch.num_kv_heads / settings.tensor_parallel_size)
    per_layer_token = 2 * heads * arch.head_dim * element
    pp = settings.pipeline_parallel_size
    full_layers = (arch.num_layers - arch.sliding_layers) / pp
    sliding_layers = arch.sliding_layers / pp
    window = min(tokens, arch.sliding_window or tokens)
    return per_layer_token * (full_layers * tokens + sliding_layers * window)


def parallel_problems(arch: Architecture, settings: EngineSettings) -> list[str]:
    """Splits vLLM refuses: attention heads (and KV heads) must divide over tensor parallelism."""
    tp = settings.tensor_parallel_size
    problems = []
    if arch.num_heads % tp:
        problems.append(
            f"tensorParallelSize {tp} does not divide the model's {arch.num_heads} attention "
            f"heads (num_attention_heads)"
        )
    kv = arch.num_kv_heads
    if (kv >= tp and kv % tp) or (kv < tp and tp % kv):
        problems.append(
            f"tensorParallelSize {tp} and the model's {kv} KV heads (num_key_value_heads) "
            f"must divide one another"
        )
    return problems


def _gib(value: float) -> str:
    """Bytes in GiB, or MiB below one GiB (small models would all read 0.0 GiB)."""
    if abs(value) < GIB:
        return f"{value / 1024**2:.1f} MiB"
    return f"{value / GIB:.1f} GiB"


def _count(parameters: int) -> str:
    return f"{parameters / 1e9:.1f}B" if parameters >= 1e9 else f"{parameters / 1e6:.1f}M"


def check_fit(arch: Architecture, settings: EngineSettings) -> FitReport:
    """The preflight verdict for one replica of `arch` with `settings` (see the module)."""
    gpus = settings.tensor_parallel_size * settings.pipeline_parallel_size
    weights = estimate_weights(arch, settings)
    per_gpu = weights.bytes / gpus
    runtime = RUNTIME_OVERHEAD if settings.accelerator == "gpu" else 0
    max_len = settings.max_model_len or arch.max_position_embeddings or 0
    seqs = settings.max_num_seqs or VLLM_DEFAULT_MAX_NUM_SEQS
    per_seq = kv_bytes_per_sequence_per_gpu(arch, settings, max_len)
    problems = parallel_problems(arch, settings)
    warnings: list[str] = []
    if arch.max_position_embeddings and max_len > arch.max_position_embeddings:
        problems.append(
            f"maxModelLen {max_len} exceeds the model's context of "
            f"{arch.max_position_embeddings} tokens (max_position_embeddings)"
        )
    method = settings.quantization or arch.quantization
    if method and _quantized_bits(method, arch.quantization_config) is None:
        warnings.append(f"quantization {method} is not known here: weights counted unquantized")
    figures = (
        f"weights {_gib(weights.bytes)} ({_count(weights.parameters)} parameters"
        f"{', ' + method if method else ''})"
    )
    if gpus > 1:
        figures += f", {_gib(per_gpu)} per GPU over {gpus} GPUs"
    unit = "per GPU " if settings.accelerator == "gpu" else ""
    seq_text = f"KV cache {_gib(per_seq)} {unit}for one {max_len}-token sequence"
    report = FitReport(
        verdict="Unknown",
        message="",
        parameters=weights.parameters,
        weights_total=weights.bytes,
        weights_per_gpu=per_gpu,
        runtime_per_gpu=float(runtime),
        kv_per_sequence_per_gpu=per_seq,
        max_model_len=max_len,
        max_num_seqs=seqs,
    )
    if settings.accelerator == "cpu" or settings.gpu_memory is None:
        where = (
            "the CPU engine: no GPU memory to check against"
            if settings.accelerator == "cpu"
            else f"GPU memory unknown for gpuProduct {settings.gpu_product or '(unset)'}; "
            "set resources.gpuMemory"
        )
        verdict: Verdict = "Unknown"
        if problems:
            verdict = "Failed"
        elif settings.accelerator == "cpu":
            verdict = "Passed"
        message = "; ".join([*problems, f"{figures}; {seq_text}; {where}", *warnings])
        return replace(report, verdict=verdict, message=message, problems=tuple(problems))

    budget = settings.gpu_memory * settings.gpu_memory_utilization
    free = budget - per_gpu - runtime
    fits = max(0, math.floor(free / per_seq)) if per_seq > 0 else seqs
    gpu = settings.gpu_product or "GPU"
    figures += (
        f" + runtime {_gib(runtime)} of {_gib(budget)} per GPU "
        f"(gpuMemoryUtilization {settings.gpu_memory_utilization:g} x {_gib(settings.gpu_memory)}"
        f" {gpu})"
    )
    if free <= 0:
        problems.append(f"the weights do not fit: {figures}")
    elif per_seq > free:
        problems.append(
            f"not one maxModelLen sequence fits: {seq_text}, {_gib(free)} left after {figures}"
        )
    elif fits < seqs:
        warnings.append(
            f"{fits} of maxNumSeqs {seqs} sequences fit at full length: {seq_text}, "
            f"{_gib(free)} left after {figures}"
        )
    if problems:
        verdict = "Failed"
        message = "; ".join(problems + warnings)
    elif warnings:
        verdict = "Warning"
        message = "; ".join(warnings)
    else:
        verdict = "Passed"
        message = (
            f"fits: {figures}; KV cache {_gib(free)} free, {_gib(per_seq)} per "
            f"{max_len}-token sequence: all maxNumSeqs {seqs} fit at full length ({fits} would)"
        )
    return replace(
        report,
        verdict=verdict,
        message=message,
        budget_per_gpu=budget,
        kv_free_per_gpu=free,
        sequences_at_full_length=fits,
        problems=tuple(problems),
    )
