"""The observed state of a ModelDeployment, as the operator reports it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import ApiModel

ConditionType = Literal["Ready", "Progressing", "Degraded"]


class Condition(ApiModel):
    """One aspect of the state, in the shape of Kubernetes' metav1.Condition."""

    type: str = Field(
        max_length=316, description="Ready, Progressing, Degraded, or a cause-specific type."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        max_length=1024,
        description="CamelCase cause a user can act on, e.g. InsufficientGPU or ModelLoadFailed.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: str = Field(
        description="When status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this condition was computed from."
    )


class WorkerCounts(ApiModel):
    """GPU worker pods: how many are wanted, running and waiting for a node."""

    desired: int = Field(default=0, ge=0, description="Worker pods the operator wants.")
    ready: int = Field(default=0, ge=0, description="Worker pods running and ready.")
    pending: int = Field(default=0, ge=0, description="Worker pods not yet scheduled or started.")


class Traffic(ApiModel):
    """Requests for this model through the namespace's gateway, counted since it started."""

    local: int = Field(default=0, ge=0, description="Requests the local replicas served.")
    overflow: int = Field(
        default=0, ge=0, description="Requests sent to the overflow provider instead."
    )
    rejected: int = Field(
        default=0, ge=0, description="Requests answered 429 because the local queue was full."
    )
    overflow_percent: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="overflow / (local + overflow) in percent; absent before the first request.",
    )


class ModelStatus(ApiModel):
    """Which bytes run: the pinned revision and the digests the replicas verified."""

    revision: str | None = Field(default=None, description="The revision spec.model pins.")
    verified_digests: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "File -> SHA-256 that serving replicas verified before their engines loaded the "
            "files; empty until one has."
        ),
    )
    progress: str | None = Field(
        default=None,
        description=(
            "The last step a starting replica reported: download progress (files and bytes), "
            "waiting for another replica's download, verification."
        ),
    )


class ModelDeploymentStatus(ApiModel):
    """What the operator observed; written only by the operator."""

    phase: Literal["Pending", "Progressing", "Ready", "Degraded", "Failed"] | None = Field(
        default=None, description="One-word summary of the conditions."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Progressing, Degraded and cause-specific conditions.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the status was computed from."
    )
    replicas: int = Field(default=0, ge=0, description="Engine replicas that exist.")
    ready_replicas: int = Field(default=0, ge=0, description="Engine replicas serving requests.")
    target_replicas: int = Field(default=0, ge=0, description="Replicas the autoscaler wants.")
    queue_depth: int = Field(
        default=0, ge=0, description="Requests waiting, summed over replicas and proxies."
    )
    model: ModelStatus | None = Field(
        default=None, description="The pinned revision and the verified digests of the weights."
    )
    workers: WorkerCounts = Field(
        default_factory=WorkerCounts, description="GPU worker pod counts."
    )
    endpoint: str | None = Field(
        default=None, description="Base URL of the OpenAI-compatible endpoint inside the cluster."
    )
    traffic: Traffic | None = Field(
        default=None,
        description="Local vs overflow requests through the gateway (models that use it).",
    )
    selector: str | None = Field(
        default=None, description="Label selector of the replicas' pods, for the scale subresource."
    )
