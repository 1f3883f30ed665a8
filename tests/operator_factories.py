"""ModelDeployments and owners for the operator's pure-function tests."""

from __future__ import annotations

from typing import Any

from modeldeploy_operator.api import ModelDeployment
from modeldeploy_operator.builders.owner import Owner
from tests.api_cases import merge

BASE: dict[str, Any] = {
    "apiVersion": "modeldeploy.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "llm", "namespace": "team"},
    "spec": {"model": {"source": "hf://openai/gpt-oss-20b"}},
}


def make_owner(spec_patch: dict[str, Any] | None = None) -> Owner:
    md = ModelDeployment.model_validate(merge(BASE, {"spec": spec_patch or {}}))
    return Owner(name="llm", namespace="team", uid="uid-1", spec=md.spec)


def make_md(spec_patch: dict[str, Any] | None = None) -> ModelDeployment:
    return ModelDeployment.model_validate(merge(BASE, {"spec": spec_patch or {}}))
