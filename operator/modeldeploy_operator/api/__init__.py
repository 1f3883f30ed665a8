"""The ModelDeployment API (modeldeploy.dev/v1alpha1): the single source of truth for the CRD,
the CLI's validation and the operator."""

from .base import ApiModel, Rule, all_rules
from .resource import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    ModelDeployment,
)
from .spec import (
    ApiKeysSecretRef,
    ConfigMapKeyRef,
    EndpointSpec,
    EngineSpec,
    ModelCacheSpec,
    ModelDeploymentSpec,
    ModelDigests,
    ModelSpec,
    OverflowSpec,
    PreflightSpec,
    PrivacySpec,
    RaySpec,
    ResourcesSpec,
    ScalingSpec,
    SecretKeyRef,
    Toleration,
)
from .status import Condition, ModelDeploymentStatus, WorkerCounts


def api_rules() -> list[Rule]:
    """Every cross-field rule of the API, each once."""
    return [rule for _, rule in all_rules(ModelDeployment)]


__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "SHORT_NAMES",
    "SINGULAR",
    "VERSION",
    "ApiKeysSecretRef",
    "ApiModel",
    "Condition",
    "ConfigMapKeyRef",
    "EndpointSpec",
    "EngineSpec",
    "ModelCacheSpec",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ModelDigests",
    "ModelSpec",
    "OverflowSpec",
    "PreflightSpec",
    "PrivacySpec",
    "RaySpec",
    "ResourcesSpec",
    "Rule",
    "ScalingSpec",
    "SecretKeyRef",
    "Toleration",
    "WorkerCounts",
    "api_rules",
]
