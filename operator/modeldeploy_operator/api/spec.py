"""The desired state of a ModelDeployment: model, engine, resources, scaling, endpoint, Ray."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator

from .base import ApiModel, Rule, fullmatch
from .source import MODEL_SOURCE_PATTERN, ModelSource, is_streamed

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def _quantity_to_string(value: Any) -> Any:
    # YAML turns `cpu: 4` into an int; Kubernetes accepts both forms, so do we.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


# The schema is the one Kubernetes itself publishes for resource.Quantity.
Quantity = Annotated[
    str,
    BeforeValidator(_quantity_to_string),
    Field(pattern=QUANTITY_PATTERN),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]

COMMIT_PATTERN = r"^[0-9a-f]{40}$"
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

# Flags that modeldeploy sets itself, or that have a typed field: repeating them in extraArgs
# would silently fight the typed value, so the spec rejects them.
MANAGED_ENGINE_FLAGS = (
    "--model",
    "--served-model-name",
    "--host",
    "--port",
    "--revision",
    "--tensor-parallel-size",
    "--pipeline-parallel-size",
    "--max-model-len",
    "--dtype",
    "--quantization",
    "--kv-cache-dtype",
    "--gpu-memory-utilization",
    "--max-num-seqs",
    "--enable-prefix-caching",
    "--no-enable-prefix-caching",
    "--tool-call-parser",
    "--enable-auto-tool-choice",
    "--reasoning-parser",
)


def _cel_string_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{i}'" for i in items) + "]"


def _flag_name(arg: str) -> str:
    return arg.split("=", 1)[0]


def _section(model: type[ApiModel], description: str) -> Any:
    """A field holding an optional section, defaulted as a whole.

    The schema's default is the section with every default filled in: the apiserver then stores
    the same values pydantic would use, and CEL rules, which are also checked against the
    default itself, see every field they read.
    """
    defaults = model().model_dump(mode="json", by_alias=True, exclude_none=True)
    return Field(
        default_factory=model, json_schema_extra={"default": defaults}, description=description
    )


class SecretKeyRef(ApiModel):
    """A key of a Secret in the ModelDeployment's namespace."""

    name: str = Field(
        min_length=1, max_length=253, description="Name of the Secret, in the same namespace."
    )
    key: str = Field(
        default="token", min_length=1, max_length=253, description="Key within the Secret."
    )


class ApiKeysSecretRef(ApiModel):
    """A key of a Secret in the ModelDeployment's namespace that holds API keys, one per line."""

    name: str = Field(
        min_length=1, max_length=253, description="Name of the Secret, in the same namespace."
    )
    key: str = Field(
        default="api-keys",
        min_length=1,
        max_length=253,
        description="Key within the Secret; its value lists the accepted keys, one per line.",
    )


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the ModelDeployment's namespace."""

    name: str = Field(
        min_length=1, max_length=253, description="Name of the ConfigMap, in the same namespace."
    )
    key: str = Field(min_length=1, max_length=253, description="Key within the ConfigMap.")


def _relative_path(name: str) -> bool:
    return not name.startswith(("/", "../"))


class ModelDigests(ApiModel):
    """The audited SHA-256 digests of a model's files: inline, or a manifest in a ConfigMap."""

    files: dict[str, Sha256] = Field(
        default_factory=dict,
        max_length=4096,
        description=(
            "File path relative to the model folder -> SHA-256 (64 lowercase hex digits). "
            "`modeldeploy digest DIR` prints them for a local folder."
        ),
    )
    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None,
        description=(
            "A ConfigMap key holding a digest manifest, as `modeldeploy digest DIR` writes it "
            "(JSON) or as sha256sum prints it."
        ),
    )

    rules = (
        Rule(
            id="digests-files-or-configmap",
            field="files",
            cel="(has(self.files) && size(self.files) > 0) != has(self.configMapRef)",
            message="digests must give exactly one of files and configMapRef",
            holds=lambda d: bool(d.files) != (d.config_map_ref is not None),
        ),
        Rule(
            id="digests-relative-paths",
            field="files",
            # Only prefixes: the apiserver prices every operation on a map key as if the key were
            # megabytes long, so a substring search over 4096 keys would exceed the CEL budget.
            # Replicas refuse any listed path that leaves the model folder.
            cel="!has(self.files) || self.files.all(f, !f.startsWith('/') && !f.startsWith('../'))",
            message=(
                "digests.files keys must be paths relative to the model folder (not starting "
                "with '/' or '../')"
            ),
            holds=lambda d: all(_relative_path(name) for name in d.files),
        ),
    )


class ModelCacheSpec(ApiModel):
    """Where the worker pods keep downloaded weights: a PersistentVolumeClaim or a node path."""

    persistent_volume_claim: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description=(
            "Name of a PersistentVolumeClaim in the namespace (ReadWriteMany to share it across "
            "nodes)."
        ),
    )
    host_path: str | None = Field(
        default=None,
        min_length=2,
        max_length=1024,
        pattern=r"^/.+",
        description=(
            "Absolute path of a directory on the node, writable by uid 1000 (created if "
            "missing), shared by every replica on that node."
        ),
    )

    rules = (
        Rule(
            id="cache-one-volume",
            field="persistentVolumeClaim",
            cel="has(self.persistentVolumeClaim) != has(self.hostPath)",
            message="cache must give exactly one of persistentVolumeClaim and hostPath",
            holds=lambda c: (c.persistent_volume_claim is None) != (c.host_path is None),
        ),
    )


class ModelSpec(ApiModel):
    """Which weights to serve and under which name."""

    source: str = Field(
        max_length=1024,
        description=(
            "Where the weights come from: hf://ORG/NAME (Hugging Face Hub), s3://BUCKET/PATH, "
            "gs://BUCKET/PATH, pvc://CLAIM/PATH (a PersistentVolumeClaim in the namespace) or "
            "file:///PATH (a path on the node or in the image)."
        ),
    )
    revision: str | None = Field(
        default=None,
        max_length=40,
        description=(
            "Pinned commit (40 lowercase hex characters) the weights are taken from. For hf:// "
            "sources it is the commit every replica downloads; for the other sources it records "
            "which commit the files are (shown in status). Allowed on any source, and required "
            "when digests are given: digests pin the files of one commit."
        ),
    )
    served_model_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
        description=(
            "The name clients put in the request's `model` field. Default: ORG/NAME for hf:// "
            "sources, else the last path segment of the source."
        ),
    )
    token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the access token for the source (e.g. a Hub token).",
    )
    digests: ModelDigests | None = Field(
        default=None,
        description=(
            "SHA-256 of the model's files, checked by every replica before its engine loads "
            "them: a replica whose files differ refuses to start (condition ModelVerified=False "
            "names the file and both digests). Needs revision."
        ),
    )
    cache: ModelCacheSpec | None = Field(
        default=None,
        description=(
            "Volume the worker pods keep downloaded weights in, shared by the replicas on a "
            "node: a model is downloaded once, under a lock. Default: an emptyDir per pod."
        ),
    )

    rules = (
        Rule(
            id="model-source-scheme",
            field="source",
            cel=f"self.source.matches(r'{MODEL_SOURCE_PATTERN}')",
            message=(
                "source must be hf://ORG/NAME, s3://BUCKET/PATH, gs://BUCKET/PATH, "
                "pvc://CLAIM/PATH or file:///PATH"
            ),
            holds=lambda m: fullmatch(MODEL_SOURCE_PATTERN, m.source),
        ),
        Rule(
            id="model-revision-commit",
            field="revision",
            cel=f"!has(self.revision) || self.revision.matches(r'{COMMIT_PATTERN}')",
            message="revision must be a full 40-character lowercase hex commit hash",
            holds=lambda m: m.revision is None or fullmatch(COMMIT_PATTERN, m.revision),
        ),
        Rule(
            id="model-digests-need-revision",
            field="revision",
            cel="!has(self.digests) || has(self.revision)",
            message=(
                "revision is required when digests are given: the digests pin the files of one "
                "commit"
            ),
            holds=lambda m: m.digests is None or m.revision is not None,
        ),
        Rule(
            id="model-digests-local-files",
            field="digests",
            cel=(
                "!has(self.digests) || "
                "!(self.source.startsWith('s3://') || self.source.startsWith('gs://'))"
            ),
            message=(
                "digests need the weights as files: s3:// and gs:// sources are streamed to the "
                "GPU; use hf://, pvc:// or file:// sources"
            ),
            holds=lambda m: m.digests is None or not is_streamed(m.source),
        ),
    )

    def effective_served_model_name(self) -> str:
        if self.served_model_name:
            return self.served_model_name
        source = self.parsed_source()
        return source.hub_id or source.rest.rstrip("/").rsplit("/", 1)[-1]

    def parsed_source(self) -> ModelSource:
        return ModelSource.parse(self.source)


class EngineSpec(ApiModel):
    """vLLM engine arguments. Each typed field maps to the vLLM flag of the same name."""

    tensor_parallel_size: int = Field(
        default=1,
        ge=1,
        le=64,
        description="GPUs one replica shards each layer over (--tensor-parallel-size).",
    )
    pipeline_parallel_size: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Pipeline stages of one replica (--pipeline-parallel-size).",
    )
    max_model_len: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Context length in tokens, prompt plus output (--max-model-len). Default: the model's."
        ),
    )
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        default="auto", description="Weight and activation dtype (--dtype)."
    )
    quantization: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[a-z0-9_-]+$",
        description=(
            "Quantization method such as mxfp4, awq, gptq, fp8 (--quantization). Default: from "
            "the model."
        ),
    )
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bfloat16"] = Field(
        default="auto", description="Dtype of the KV cache (--kv-cache-dtype)."
    )
    gpu_memory_utilization: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description=(
            "Fraction of accelerator memory the engine may use for weights and KV cache "
            "(--gpu-memory-utilization). On the CPU engine: the fraction of host memory."
        ),
    )
    max_num_seqs: int | None = Field(
        default=None,
        ge=1,
        le=65536,
        description="Most sequences batched at once per replica (--max-num-seqs).",
    )
    enable_prefix_caching: bool | None = Field(
        default=None, description="Reuse the KV cache of shared prompt prefixes. Default: vLLM's."
    )
    tool_call_parser: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description=(
            "Parser that turns model output into tool calls, e.g. openai for gpt-oss "
            "(--tool-call-parser)."
        ),
    )
    enable_auto_tool_choice: bool = Field(
        default=False,
        description="Let the model decide when to call tools (--enable-auto-tool-choice).",
    )
    reasoning_parser: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description=(
            "Parser that separates reasoning from the answer, e.g. openai_gptoss "
            "(--reasoning-parser)."
        ),
    )
    extra_args: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        default_factory=list,
        max_length=64,
        description=(
            'Further vLLM engine flags, passed verbatim, e.g. ["--max-num-batched-tokens", "8192"].'
        ),
    )

    rules = (
        Rule(
            id="engine-auto-tool-choice-needs-parser",
            field="enableAutoToolChoice",
            cel="!self.enableAutoToolChoice || has(self.toolCallParser)",
            message="enableAutoToolChoice requires toolCallParser",
            holds=lambda e: not e.enable_auto_tool_choice or e.tool_call_parser is not None,
        ),
        Rule(
            id="engine-extra-args-not-managed",
            field="extraArgs",
            cel=(
                "!has(self.extraArgs) || self.extraArgs.all(a, !(a.split('=')[0] in "
                f"{_cel_string_list(MANAGED_ENGINE_FLAGS)}))"
            ),
            message=(
                "extraArgs must not set a flag that has its own field or that modeldeploy sets: "
                + ", ".join(MANAGED_ENGINE_FLAGS)
            ),
            holds=lambda e: all(_flag_name(a) not in MANAGED_ENGINE_FLAGS for a in e.extra_args),
        ),
    )


class Toleration(ApiModel):
    """A Kubernetes toleration, copied onto the worker pods."""

    key: str | None = Field(
        default=None, max_length=316, description="Taint key the toleration matches."
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal (default Equal)."
    )
    value: str | None = Field(
        default=None, max_length=63, description="Taint value the toleration matches."
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated before eviction."
    )


class ResourcesSpec(ApiModel):
    """What each replica and each worker pod gets, and where the workers may run."""

    accelerator: Literal["nvidia.com/gpu", "cpu"] = Field(
        default="nvidia.com/gpu",
        description="nvidia.com/gpu for GPU workers, cpu for the CPU engine.",
    )
    gpus_per_replica: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description=(
            "GPUs one engine replica uses. Default and only allowed value: tensorParallelSize x "
            "pipelineParallelSize."
        ),
    )
    gpus_per_worker: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description=(
            "GPUs requested by each worker pod. Default: gpusPerReplica (one replica per pod)."
        ),
    )
    gpu_product: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$",
        description=(
            "Value of the nvidia.com/gpu.product node label the workers require, e.g. "
            "NVIDIA-H100-80GB-HBM3."
        ),
    )
    gpu_memory: Quantity | None = Field(
        default=None,
        description=(
            "Memory of one GPU, for the fit check (e.g. 48Gi). Default: from the built-in table "
            "of common GPUs, by gpuProduct."
        ),
    )
    cpu: Quantity = Field(default="8", description="CPU requested by each worker pod.")
    memory: Quantity = Field(default="64Gi", description="Memory requested by each worker pod.")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the worker pods require."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Tolerations of the worker pods."
    )
    affinity: dict[str, Any] | None = Field(
        default=None, description="Kubernetes affinity of the worker pods, as in a pod spec."
    )

    rules = tuple(
        Rule(
            id=f"resources-cpu-no-{name}",
            field=camel,
            cel=f"self.accelerator != 'cpu' || !has(self.{camel})",
            message=f"{camel} must not be set when accelerator is cpu",
            holds=(lambda attr: lambda r: r.accelerator != "cpu" or getattr(r, attr) is None)(name),
        )
        for name, camel in (
            ("gpus_per_replica", "gpusPerReplica"),
            ("gpus_per_worker", "gpusPerWorker"),
            ("gpu_product", "gpuProduct"),
            ("gpu_memory", "gpuMemory"),
        )
    )


class ScalingSpec(ApiModel):
    """How many replicas run, and how they follow the request queue."""

    mode: Literal["queue", "external"] = Field(
        default="queue",
        description=(
            "queue: replicas follow the request queue depth (built-in autoscaling). external: "
            "replicas follow `replicas`, set by a person or an HPA through the scale subresource."
        ),
    )
    replicas: int = Field(default=1, ge=0, le=1024, description="Replica count in external mode.")
    min_replicas: int = Field(
        default=1, ge=0, le=1024, description="Fewest replicas; 0 allows scale to zero."
    )
    max_replicas: int = Field(default=1, ge=1, le=1024, description="Most replicas.")
    target_queue_depth: float = Field(
        default=2,
        gt=0,
        le=10000,
        description="Waiting requests per replica above which the autoscaler adds replicas.",
    )
    scale_up_stabilization_seconds: float = Field(
        default=1,
        ge=0,
        le=3600,
        description="How long the queue must stay above target before replicas are added.",
    )
    scale_down_delay_seconds: float = Field(
        default=300,
        ge=0,
        le=86400,
        description="How long the queue must stay low before replicas are removed.",
    )
    scale_to_zero_after_seconds: float = Field(
        default=900,
        ge=0,
        le=604800,
        description="Idle time before the last replica is removed (only when minReplicas is 0).",
    )
    max_queued_requests: int = Field(
        default=128,
        ge=0,
        le=1000000,
        description=(
            "Requests held while no replica can take them; beyond this, 429 with Retry-After."
        ),
    )

    rules = (
        Rule(
            id="scaling-max-ge-min",
            field="maxReplicas",
            cel="self.maxReplicas >= self.minReplicas",
            message="maxReplicas must be greater than or equal to minReplicas",
            holds=lambda s: s.max_replicas >= s.min_replicas,
        ),
        Rule(
            id="scaling-external-replicas-in-bounds",
            field="replicas",
            cel=(
                "self.mode != 'external' || "
                "(self.replicas >= self.minReplicas && self.replicas <= self.maxReplicas)"
            ),
            message="replicas must lie between minReplicas and maxReplicas in external mode",
            holds=lambda s: s.mode != "external" or s.min_replicas <= s.replicas <= s.max_replicas,
        ),
    )


class EndpointSpec(ApiModel):
    """The in-cluster OpenAI-compatible endpoint: Service <name> in the namespace."""

    port: int = Field(default=8000, ge=1, le=65535, description="Service port of the endpoint.")
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        default="ClusterIP", description="Kubernetes Service type of the endpoint."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on the Service.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Extra annotations on the Service."
    )
    api_keys_secret_ref: ApiKeysSecretRef | None = Field(
        default=None,
        description=(
            "Secret key holding the API keys clients must send as `Authorization: Bearer KEY`, "
            "one per line; a missing or wrong key gets 401. Unset: no key needed. Setting it "
            "serves the model through the namespace's gateway."
        ),
    )


OVERFLOW_BASE_URL_PATTERN = r"^https?://[^\s/@]+(/[^\s]*)?$"
OverflowWhen = Literal["ColdStart", "Saturated"]


def _every_overflow_cause() -> list[OverflowWhen]:
    return ["ColdStart", "Saturated"]


class OverflowSpec(ApiModel):
    """An OpenAI-compatible provider that answers when the local replicas cannot in time."""

    base_url: str = Field(
        max_length=2048,
        pattern=OVERFLOW_BASE_URL_PATTERN,
        description=(
            "Provider base URL including the API version, e.g. https://api.openai.com/v1 "
            "(no credentials in the URL: use apiKeySecretRef)."
        ),
    )
    model: str = Field(
        min_length=1,
        max_length=256,
        description="The model name at the provider; also listed and routable by that name.",
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the provider API key, sent as a Bearer token.",
    )
    when: list[OverflowWhen] = Field(
        default_factory=_every_overflow_cause,
        min_length=1,
        max_length=2,
        description=(
            "ColdStart: no local replica is ready. Saturated: the expected local queue wait "
            "exceeds maxQueueWaitSeconds."
        ),
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "default": ["ColdStart", "Saturated"],
        },
    )

    @field_validator("when")
    @classmethod
    def _when_unique(cls, value: list[str]) -> list[str]:
        # The CRD declares the list a set, so the apiserver rejects duplicates too.
        if len(set(value)) != len(value):
            raise ValueError(f"when must not repeat a value, got {value}")
        return value

    max_queue_wait_seconds: float = Field(
        default=5,
        ge=0,
        le=3600,
        description=(
            "Longest expected local queue wait a request accepts before it overflows; also how "
            "long connecting to the provider may take before the request gets 503."
        ),
    )


class PrivacySpec(ApiModel):
    """Where requests and prompts may go."""

    local_only: bool = Field(
        default=False,
        description=(
            "Nothing leaves the local replicas: no overflow, no provider. Requests beyond the "
            "local queue bound (scaling.maxQueuedRequests) get 429 with Retry-After."
        ),
    )


class PreflightSpec(ApiModel):
    """The fit check made before any worker pod is created: does one replica fit its GPUs?"""

    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None,
        description=(
            "A ConfigMap key holding the model's config.json. Default: config.json in a file:// "
            "source's folder when the operator can read it; otherwise the check is skipped."
        ),
    )
    enforce: bool = Field(
        default=True,
        description=(
            "When the fit check fails, create no worker pods and submit nothing (false: report "
            "the failure as condition FitCheck and go on)."
        ),
    )


class HeadResources(ApiModel):
    """Requests of the Ray head pod (no GPU: it runs the GCS, dashboard and Serve controller)."""

    cpu: Quantity = Field(default="2", description="CPU requested by the Ray head pod.")
    memory: Quantity = Field(default="8Gi", description="Memory requested by the Ray head pod.")


class RaySpec(ApiModel):
    """The Ray cluster that hosts the replicas."""

    image: str = Field(
        default="ghcr.io/modeldeploy/serving:0.1.0",
        min_length=1,
        max_length=512,
        description="Serving image (Ray, vLLM and modeldeploy) of the head and worker pods.",
    )
    head_resources: HeadResources = _section(HeadResources, "Requests of the Ray head pod.")


class ModelDeploymentSpec(ApiModel):
    """Desired state: one model served by autoscaled vLLM replicas behind one endpoint."""

    model: ModelSpec = Field(description="The model to serve.")
    engine: EngineSpec = _section(EngineSpec, "vLLM engine arguments of every replica.")
    resources: ResourcesSpec = _section(ResourcesSpec, "Accelerators and pod resources.")
    scaling: ScalingSpec = _section(ScalingSpec, "Replica counts and queue-depth autoscaling.")
    endpoint: EndpointSpec = _section(EndpointSpec, "The in-cluster OpenAI-compatible endpoint.")
    ray: RaySpec = _section(RaySpec, "The Ray cluster hosting the replicas.")
    preflight: PreflightSpec = _section(
        PreflightSpec, "The GPU fit check made before any worker pod is created."
    )
    overflow: OverflowSpec | None = Field(
        default=None,
        description=(
            "Send requests to a hosted OpenAI-compatible provider during a cold start or when "
            "the local queue wait would exceed a bound; served through the namespace's gateway."
        ),
    )
    privacy: PrivacySpec = _section(PrivacySpec, "Where requests may go.")

    rules = (
        Rule(
            id="local-only-forbids-overflow",
            field="privacy.localOnly",
            cel="!self.privacy.localOnly || !has(self.overflow)",
            message="privacy.localOnly forbids overflow: remove spec.overflow or set it false",
            holds=lambda s: not (s.privacy.local_only and s.overflow is not None),
        ),
        Rule(
            id="gpus-per-replica-matches-parallelism",
            field="resources.gpusPerReplica",
            cel=(
                "self.resources.accelerator == 'cpu' || !has(self.resources.gpusPerReplica) || "
                "self.resources.gpusPerReplica == "
                "self.engine.tensorParallelSize * self.engine.pipelineParallelSize"
            ),
            message=(
                "gpusPerReplica must equal engine.tensorParallelSize x engine.pipelineParallelSize"
            ),
            holds=lambda s: (
                s.resources.accelerator == "cpu"
                or s.resources.gpus_per_replica is None
                or s.resources.gpus_per_replica == s.parallel_gpus()
            ),
        ),
        Rule(
            id="gpus-per-worker-fits-replica",
            field="resources.gpusPerWorker",
            cel=(
                "self.resources.accelerator == 'cpu' || !has(self.resources.gpusPerWorker) || "
                "(self.engine.tensorParallelSize * self.engine.pipelineParallelSize) "
                "% self.resources.gpusPerWorker == 0 || self.resources.gpusPerWorker % "
                "(self.engine.tensorParallelSize * self.engine.pipelineParallelSize) == 0"
            ),
            message=(
                "gpusPerWorker must divide, or be a multiple of, the GPUs per replica "
                "(engine.tensorParallelSize x engine.pipelineParallelSize)"
            ),
            holds=lambda s: (
                s.resources.accelerator == "cpu"
                or s.resources.gpus_per_worker is None
                or s.parallel_gpus() % s.resources.gpus_per_worker == 0
                or s.resources.gpus_per_worker % s.parallel_gpus() == 0
            ),
        ),
    )

    def uses_gateway(self) -> bool:
        """True when the model is served through the namespace's gateway (keys, overflow,
        the local-only guarantee); otherwise only through its own Service."""
        return (
            self.endpoint.api_keys_secret_ref is not None
            or self.overflow is not None
            or self.privacy.local_only
        )

    def parallel_gpus(self) -> int:
        return self.engine.tensor_parallel_size * self.engine.pipeline_parallel_size

    def gpus_per_replica(self) -> int:
        """GPUs one replica needs: 0 on the CPU engine."""
        return 0 if self.resources.accelerator == "cpu" else self.parallel_gpus()

    def gpus_per_worker(self) -> int:
        """GPUs one worker pod requests: 0 on the CPU engine."""
        if self.resources.accelerator == "cpu":
            return 0
        return self.resources.gpus_per_worker or self.gpus_per_replica()
