"""ModelDeployment -> ServingConfig: what each Serve replica runs, decided purely from the spec.

The serving layer knows nothing of ModelDeployments; this is the one place that translates. The
same function feeds the operator's Serve config and `modeldeploy serve -f FILE`, so a file runs
the same engine locally as on the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from modeldeploy_serving.autoscaling import AutoscalingConfig
from modeldeploy_serving.config import EngineConfig, ServingConfig, Verification

from ..api import ModelDeployment, ModelDeploymentSpec
from ..api.source import ModelSource
from ..common.quantities import whole_cpus
from ..common.validation import parse_model_deployment

# Where the worker pods mount a pvc:// source's claim (pods.py): PVC_MOUNT_ROOT/CLAIM/PATH.
PVC_MOUNT_ROOT = "/models"


def model_location(source: str) -> str:
    """The `--model` value for a spec's model source (pure).

    hf://ORG/NAME -> ORG/NAME (vLLM downloads it); file:///PATH -> /PATH;
    pvc://CLAIM/PATH -> PVC_MOUNT_ROOT/CLAIM/PATH; s3:// and gs:// URIs unchanged (streamed).
    """
    parsed = ModelSource.parse(source)
    if parsed.scheme == "pvc":
        return f"{PVC_MOUNT_ROOT}/{parsed.rest}"
    # vLLM streams s3:// and gs:// weights itself through the Run:ai model streamer.
    return source if parsed.streamed else parsed.rest


def _extra_args(spec: ModelDeploymentSpec) -> list[str]:
    extra = list(spec.engine.extra_args)
    if spec.model.parsed_source().streamed and not any(
        arg.split("=", 1)[0] == "--load-format" for arg in extra
    ):
        extra = ["--load-format", "runai_streamer", *extra]
    return extra


def replicas_per_worker(spec: ModelDeploymentSpec) -> int:
    """How many replicas one worker pod holds: its GPUs over a replica's, at least 1."""
    if spec.resources.accelerator == "cpu":
        return 1
    return max(1, spec.gpus_per_worker() // spec.gpus_per_replica())


def verification(
    md: ModelDeployment, manifest: Mapping[str, str] | None = None
) -> Verification | None:
    """What every replica checks before loading: the spec's digests, or the manifest read from
    the ConfigMap that `spec.model.digests.configMapRef` names (pure; the caller reads it)."""
    digests = md.spec.model.digests
    if digests is None:
        return None
    files = dict(digests.files) if digests.files else dict(manifest or {})
    if not files:
        raise ValueError("spec.model.digests.configMapRef: the manifest was not read")
    return Verification(revision=md.spec.model.revision, digests=files)


def build_serving_config(
    md: ModelDeployment, manifest: Mapping[str, str] | None = None
) -> ServingConfig:
    """The ServingConfig for a ModelDeployment (pure). `manifest`: the digests read from the
    ConfigMap of `spec.model.digests.configMapRef`, when it names one."""
    spec = md.spec
    engine = spec.engine
    cpu = spec.resources.accelerator == "cpu"
    name = md.metadata.get("name")
    gpus = spec.gpus_per_replica()
    # A replica spanning several worker pods needs vLLM's Ray executor (workers as Ray actors);
    # one that fits a pod runs its workers as processes beside it.
    spans_pods = not cpu and spec.gpus_per_worker() < gpus
    # Ray's accounting on a worker pod: the pod's whole CPUs shared by the replicas it holds.
    cpus = max(1, whole_cpus(spec.resources.cpu) // replicas_per_worker(spec))
    scaling = spec.scaling
    # Queue mode always runs the policy, even with equal bounds: moving a bound later is then a
    # lightweight Serve update, where switching between a fixed count and the policy is not.
    external = scaling.mode == "external"
    autoscaling = None if external else AutoscalingConfig.from_scaling_spec(scaling)
    return ServingConfig(
        app_name=name if isinstance(name, str) and name else "modeldeploy",
        model=model_location(spec.model.source),
        # vLLM downloads a hub model at this commit; for the other sources the revision only
        # labels the files (it travels with the digests).
        revision=spec.model.revision if spec.model.parsed_source().hub_id else None,
        served_model_name=spec.model.effective_served_model_name(),
        verify=verification(md, manifest),
        engine=EngineConfig(
            tensor_parallel_size=engine.tensor_parallel_size,
            pipeline_parallel_size=engine.pipeline_parallel_size,
            max_model_len=engine.max_model_len,
            dtype=engine.dtype,
            quantization=engine.quantization,
            kv_cache_dtype=engine.kv_cache_dtype,
            gpu_memory_utilization=engine.gpu_memory_utilization,
            max_num_seqs=engine.max_num_seqs,
            enable_prefix_caching=engine.enable_prefix_caching,
            tool_call_parser=engine.tool_call_parser,
            enable_auto_tool_choice=engine.enable_auto_tool_choice,
            reasoning_parser=engine.reasoning_parser,
            extra_args=_extra_args(spec),
        ),
        accelerator="cpu" if cpu else "gpu",
        gpus_per_replica=gpus,
        distributed_executor_backend="ray" if spans_pods else "mp",
        cpus_per_replica=float(cpus),
        max_queued_requests=scaling.max_queued_requests,
        num_replicas=scaling.replicas if external else None,
        autoscaling=autoscaling,
    )


def load_serving_config(path: Path) -> ServingConfig:
    """The ServingConfig of the one ModelDeployment in a YAML file (ValueError if invalid).

    Outside the cluster there are no ConfigMaps: digests must be given inline (digests.files).
    """
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    if len(documents) != 1:
        raise ValueError(f"{path}: expected one ModelDeployment document, found {len(documents)}")
    md = parse_model_deployment(documents[0])
    digests = md.spec.model.digests
    if digests is not None and digests.config_map_ref is not None:
        raise ValueError(
            "spec.model.digests.configMapRef: a local run reads no ConfigMaps; expected the "
            "digests inline in spec.model.digests.files (`modeldeploy digest DIR` prints them)"
        )
    return build_serving_config(md)
