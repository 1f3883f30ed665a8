"""Settings of the queue-depth autoscaler.

One field per `spec.scaling` field of the ModelDeployment API (same meaning, `_s` for seconds),
plus the few knobs the API does not expose (step bounds, hysteresis), which keep documented
defaults. Serving must not import the operator, so `from_scaling_spec` reads the spec by
attribute name (`ScalingSpecLike`) instead of importing its class.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ScalingSpecLike(Protocol):
    """The attributes of the operator's `ScalingSpec` that the autoscaler reads."""

    @property
    def min_replicas(self) -> int: ...
    @property
    def max_replicas(self) -> int: ...
    @property
    def target_queue_depth(self) -> float: ...
    @property
    def scale_up_stabilization_seconds(self) -> float: ...
    @property
    def scale_down_delay_seconds(self) -> float: ...
    @property
    def scale_to_zero_after_seconds(self) -> float: ...


class AutoscalingConfig(BaseModel):
    """How the replica count follows the request queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_replicas: int = Field(
        default=1, ge=0, le=1024, description="Fewest replicas; 0 allows scale to zero."
    )
    max_replicas: int = Field(default=1, ge=1, le=1024, description="Most replicas.")
    initial_replicas: int | None = Field(
        default=None,
        ge=0,
        le=1024,
        description="Replicas started on deploy; minReplicas when unset.",
    )
    target_queue_depth: float = Field(
        default=2,
        gt=0,
        le=10000,
        description="Waiting requests per replica above which replicas are added.",
    )
    scale_up_stabilization_s: float = Field(
        default=1,
        ge=0,
        le=3600,
        description="How long the queue must stay above target before replicas are added.",
    )
    scale_down_delay_s: float = Field(
        default=300,
        ge=0,
        le=86400,
        description=(
            "How long the queue must stay low (and no replica have been added) before a "
            "replica is removed; also the wait between two removals."
        ),
    )
    scale_to_zero_after_s: float = Field(
        default=900,
        ge=0,
        le=604800,
        description="Time with no request at all before replicas go to zero (minReplicas 0).",
    )
    max_scale_up_step: int = Field(
        default=4, ge=1, le=1024, description="Most replicas added by one decision."
    )
    max_scale_down_step: int = Field(
        default=1, ge=1, le=1024, description="Most replicas removed by one decision."
    )
    scale_down_queue_ratio: float = Field(
        default=0.5,
        ge=0,
        lt=1,
        description=(
            "The queue counts as low at or below this fraction of the target per replica. "
            "Between it and the target neither timer runs, so a queue hovering near the "
            "target adds or removes nothing (hysteresis)."
        ),
    )
    pending_growth_factor: float = Field(
        default=2,
        ge=1,
        description=(
            "While replicas added earlier are still starting, add more only once the queue "
            "has grown to this multiple of the queue they were sized for: the backlog that "
            "builds during a cold start is already being answered."
        ),
    )
    scale_down_utilization: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description=(
            "A replica is removed only if the most requests running at once during the "
            "low-queue window fit in the remaining replicas at this fraction of the running "
            "requests per replica last seen at saturation."
        ),
    )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> AutoscalingConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})"
            )
        if self.initial_replicas is not None and not (
            self.min_replicas <= self.initial_replicas <= self.max_replicas
        ):
            raise ValueError(
                f"initial_replicas ({self.initial_replicas}) must lie within "
                f"[{self.min_replicas}, {self.max_replicas}]"
            )
        return self

    @classmethod
    def from_scaling_spec(cls, spec: ScalingSpecLike, **overrides: object) -> AutoscalingConfig:
        """The config for a ModelDeployment's `spec.scaling`; `overrides` set the extra knobs."""
        fields: dict[str, object] = {
            "min_replicas": spec.min_replicas,
            "max_replicas": spec.max_replicas,
            "target_queue_depth": spec.target_queue_depth,
            "scale_up_stabilization_s": spec.scale_up_stabilization_seconds,
            "scale_down_delay_s": spec.scale_down_delay_seconds,
            "scale_to_zero_after_s": spec.scale_to_zero_after_seconds,
        }
        fields.update(overrides)
        return cls.model_validate(fields)

    @property
    def start_replicas(self) -> int:
        """Replicas on deploy."""
        return self.min_replicas if self.initial_replicas is None else self.initial_replicas
