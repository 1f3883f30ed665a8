"""The ModelDeployment object as stored in Kubernetes: apiVersion, kind, metadata, spec, status."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import ApiModel, Rule, fullmatch
from .spec import ModelDeploymentSpec
from .status import ModelDeploymentStatus

GROUP = "modeldeploy.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ("md",)

# The name prefixes the head, worker and Service names; Services need a DNS-1035 label and
# generated pod names must stay under 63 characters.
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_NAME_LENGTH = 40


def _metadata_name(md: ModelDeployment) -> str | None:
    name = md.metadata.get("name")
    return name if isinstance(name, str) else None


class ModelDeployment(ApiModel):
    """One open-weight model served by vLLM replicas on Ray Serve, with one endpoint."""

    api_version: Literal["modeldeploy.dev/v1alpha1"] = Field(
        alias="apiVersion", description="modeldeploy.dev/v1alpha1"
    )
    kind: Literal["ModelDeployment"] = Field(description="ModelDeployment")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: ModelDeploymentSpec = Field(description="Desired state.")
    status: ModelDeploymentStatus | None = Field(default=None, description="Observed state.")

    rules = (
        Rule(
            id="name-dns-label",
            field="metadata.name",
            cel=f"self.metadata.name.matches(r'{NAME_PATTERN}')",
            message=(
                "metadata.name must start with a letter and contain only lowercase letters, "
                "digits and '-'"
            ),
            holds=lambda md: (name := _metadata_name(md)) is None or fullmatch(NAME_PATTERN, name),
        ),
        Rule(
            id="name-length",
            field="metadata.name",
            cel=f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
            message=f"metadata.name must be at most {MAX_NAME_LENGTH} characters",
            holds=lambda md: (name := _metadata_name(md)) is None or len(name) <= MAX_NAME_LENGTH,
        ),
    )
