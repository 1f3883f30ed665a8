"""What one Serve application needs to run a model: the `ServingConfig`.

This module is the contract between the operator and the serving layer. The operator builds a
`ServingConfig` from a ModelDeployment (a pure function on its side) and ships it, as JSON, inside
the Serve application config; a replica validates it again and starts its engine from it. It
imports neither ray nor vllm, so the operator can import it without the engine installed.

Engine settings are turned into the exact command-line arguments of `vllm serve`
(`ServingConfig.vllm_args`): a replica parses them with vLLM's own argument parser, and the bare
server in the overhead benchmark gets the very same list, so "same engine arguments" is true by
construction rather than by care.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modeldeploy_serving.autoscaling import AutoscalingConfig

# vLLM's own default for max_num_seqs when the spec leaves it unset; used only to size
# max_ongoing_requests so Ray Serve never holds back requests the engine would batch, and
# lets the engine's queue show the backlog.
VLLM_DEFAULT_MAX_NUM_SEQS = 256

Accelerator = Literal["gpu", "cpu"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineConfig(_Model):
    """vLLM engine settings; each maps to one `vllm serve` flag (None leaves vLLM's default)."""

    tensor_parallel_size: int = Field(
        default=1, ge=1, description="GPUs a layer is split across (--tensor-parallel-size)."
    )
    pipeline_parallel_size: int = Field(
        default=1, ge=1, description="Pipeline stages the layers are split into."
    )
    max_model_len: int | None = Field(
        default=None, ge=1, description="Longest context (prompt + output) in tokens."
    )
    dtype: str = Field(
        default="auto", description="Weight and activation dtype: auto, float16, bfloat16, ..."
    )
    quantization: str | None = Field(
        default=None, description="Quantization method (e.g. awq, gptq, fp8, mxfp4)."
    )
    kv_cache_dtype: str = Field(default="auto", description="KV cache dtype: auto, fp8, ...")
    gpu_memory_utilization: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description=(
            "Fraction of accelerator memory the engine may use; on the CPU backend, the "
            "fraction of host memory reserved for the KV cache."
        ),
    )
    max_num_seqs: int | None = Field(
        default=None, ge=1, description="Most sequences the engine batches in one step."
    )
    enable_prefix_caching: bool | None = Field(
        default=None, description="Reuse the KV cache of shared prompt prefixes."
    )
    enforce_eager: bool = Field(
        default=False, description="Skip CUDA graph capture (faster start, slower decode)."
    )
    tool_call_parser: str | None = Field(
        default=None, description="Parser that extracts tool calls from the model's output."
    )
    enable_auto_tool_choice: bool = Field(
        default=False, description="Let the model decide when to call tools (tool_choice=auto)."
    )
    reasoning_parser: str | None = Field(
        default=None, description="Parser that splits reasoning from the final answer."
    )
    extra_args: list[str] = Field(
        default_factory=list,
        description="Further `vllm serve` flags, passed through verbatim after the others.",
    )

    @model_validator(mode="after")
    def _auto_tool_choice_needs_parser(self) -> EngineConfig:
        if self.enable_auto_tool_choice and not self.tool_call_parser:
            raise ValueError("enable_auto_tool_choice=true needs tool_call_parser to be set")
        return self


class Verification(_Model):
    """The audited bytes of the model: every replica checks them before its engine loads."""

    revision: str | None = Field(
        default=None, description="The commit the digests were taken from (logged, reported)."
    )
    digests: dict[str, str] = Field(
        min_length=1,
        description=(
            "Relative file path -> SHA-256 (64 lowercase hex digits). Each listed file must "
            "match, and each weight file in the folder must be listed."
        ),
    )


class ServingConfig(_Model):
    """Everything a Serve application needs to run one model on a set of identical replicas."""

    app_name: str = Field(
        default="modeldeploy", min_length=1, description="Ray Serve application name."
    )
    model: str = Field(
        min_length=1,
        description="What vLLM loads: a local directory, or a model hub id (org/name).",
    )
    revision: str | None = Field(
        default=None, description="Model hub revision (branch, tag or commit); hub ids only."
    )
    served_model_name: str = Field(
        min_length=1, description="The name clients pass as `model` in OpenAI requests."
    )
    verify: Verification | None = Field(
        default=None,
        description="Digests every replica checks before loading; None: no check.",
    )
    engine: EngineConfig = Field(default_factory=EngineConfig, description="vLLM engine settings.")
    accelerator: Accelerator = Field(
        default="gpu", description="gpu: replicas reserve GPUs; cpu: the vLLM CPU engine."
    )
    gpus_per_replica: int = Field(
        default=1, ge=0, description="GPUs one replica (one engine) reserves; 0 for cpu."
    )
    distributed_executor_backend: Literal["mp", "ray"] = Field(
        default="mp",
        description=(
            "How one engine runs its GPU workers. mp: as processes beside the replica, so all of "
            "a replica's GPUs must be on one node (one packed placement-group bundle). ray: as "
            "Ray actors, one bundle per GPU, so a replica may span nodes."
        ),
    )
    cpus_per_replica: float = Field(
        default=1.0, gt=0.0, description="CPUs one replica reserves in Ray's accounting."
    )
    num_replicas: int | None = Field(
        default=1,
        ge=0,
        description="Fixed replica count; None when `autoscaling` drives the count.",
    )
    autoscaling: AutoscalingConfig | None = Field(
        default=None,
        description="Queue-depth autoscaling (bounds, target, delays); only without num_replicas.",
    )
    max_ongoing_requests: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Requests Ray Serve sends one replica at once. Unset: twice the engine's "
            "max_num_seqs, so requests join the engine's continuous batch, and the backlog "
            "waits in the engine's queue, where the queue-depth policy reads it."
        ),
    )
    max_queued_requests: int = Field(
        default=-1,
        ge=-1,
        description=(
            "Requests Serve holds while every replica is at max_ongoing_requests (or while "
            "none is running yet); beyond this it answers 429 with Retry-After. -1: no limit."
        ),
    )
    graceful_shutdown_timeout_s: float = Field(
        default=60.0,
        ge=0.0,
        description="How long a stopping replica keeps serving its in-flight requests.",
    )
    health_check_period_s: float = Field(
        default=10.0, gt=0.0, description="How often Serve asks a replica's engine if it is alive."
    )
    health_check_timeout_s: float = Field(
        default=30.0, gt=0.0, description="A health check slower than this fails the replica."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables set in each replica process."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ServingConfig:
        parallel = self.engine.tensor_parallel_size * self.engine.pipeline_parallel_size
        if self.accelerator == "gpu":
            if self.gpus_per_replica != parallel:
                raise ValueError(
                    f"gpus_per_replica={self.gpus_per_replica} must equal tensor_parallel_size x "
                    f"pipeline_parallel_size = {parallel}: one replica is one engine"
                )
        elif self.gpus_per_replica != 0:
            raise ValueError(
                f"accelerator cpu needs gpus_per_replica=0, got {self.gpus_per_replica}"
            )
        if self.verify is not None and "://" in self.model:
            raise ValueError(
                f"verify needs the model as files; {self.model!r} is streamed to the engine"
            )
        if (self.num_replicas is None) == (self.autoscaling is None):
            raise ValueError("set exactly one of num_replicas and autoscaling")
        return self

    @property
    def most_replicas(self) -> int:
        """The largest replica count this config can ask for."""
        if self.autoscaling is not None:
            return self.autoscaling.max_replicas
        return self.num_replicas or 0

    @property
    def effective_max_ongoing_requests(self) -> int:
        """max_ongoing_requests, by default the engine's batch plus as many waiting.

        A replica's admitted requests beyond its batch wait in the engine's queue, which every
        replica reports to the queue-depth policy. What a replica does not admit waits in front
        of it: at a Serve handle (counted too) behind the Python proxy, but inside HAProxy, which
        no autoscaling signal sees, behind the default ingress. Room for one more batch keeps
        the backlog visible there.
        """
        if self.max_ongoing_requests is not None:
            return self.max_ongoing_requests
        return 2 * (self.engine.max_num_seqs or VLLM_DEFAULT_MAX_NUM_SEQS)

    def vllm_args(self) -> list[str]:
        """The `vllm serve` arguments for this config (without host and port)."""
        return vllm_cli_args(self)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), stable for hashing and for shipping to replicas."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def _flag(name: str, value: str | int | float | None) -> list[str]:
    return [] if value is None else [name, str(value)]


def _bool_flag(name: str, value: bool | None) -> list[str]:
    """vLLM's boolean flags take --x / --no-x; None leaves the engine's own default."""
    if value is None:
        return []
    return [name if value else "--no-" + name.removeprefix("--")]


def vllm_cli_args(config: ServingConfig) -> list[str]:
    """The exact `vllm serve` argument list for `config`, in a fixed order.

    Pure: the same config always gives the same list. `extra_args` come last so a user's
    explicit flag wins over a generated one (argparse keeps the last occurrence).
    """
    engine = config.engine
    args = ["--model", config.model, "--served-model-name", config.served_model_name]
    args += _flag("--revision", config.revision)
    args += _flag("--tensor-parallel-size", engine.tensor_parallel_size)
    args += _flag("--pipeline-parallel-size", engine.pipeline_parallel_size)
    args += _flag("--max-model-len", engine.max_model_len)
    args += _flag("--dtype", engine.dtype)
    args += _flag("--quantization", engine.quantization)
    args += _flag("--kv-cache-dtype", engine.kv_cache_dtype)
    args += _flag("--gpu-memory-utilization", engine.gpu_memory_utilization)
    args += _flag("--max-num-seqs", engine.max_num_seqs)
    args += _bool_flag("--enable-prefix-caching", engine.enable_prefix_caching)
    if engine.enforce_eager:
        args.append("--enforce-eager")
    args += _flag("--tool-call-parser", engine.tool_call_parser)
    if engine.enable_auto_tool_choice:
        args.append("--enable-auto-tool-choice")
    args += _flag("--reasoning-parser", engine.reasoning_parser)
    if config.accelerator == "gpu" and config.gpus_per_replica > 1:
        args += ["--distributed-executor-backend", config.distributed_executor_backend]
    return args + list(engine.extra_args)
