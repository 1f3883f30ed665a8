"""The generated CRD: committed copy in sync, structural, described, carrying every rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modeldeploy_operator.api import ModelDeploymentSpec, api_rules
from modeldeploy_operator.builders.crd import build_crd, render_crd

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "crds" / "modeldeployments.modeldeploy.dev.yaml"


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += _walk(sub, f"{path}.{name}" if path else name)
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_committed_crd_matches_models() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_crd(), "crds/ is stale: run `make crd`"


def test_every_field_has_a_description() -> None:
    undocumented = [
        path
        for path, node in _walk(_schema())
        if path
        and not path.endswith(("[]", "{}"))
        and path != "metadata"
        and not node.get("description")
    ]
    assert undocumented == []


def test_schema_is_structural() -> None:
    for path, node in _walk(_schema()):
        assert "$ref" not in node and "title" not in node, path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        if node.get("type") == "object":
            assert "additionalProperties" not in node or "properties" not in node, path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string"), path


def test_every_rule_is_a_cel_validation() -> None:
    cel = {
        v["rule"]: v["message"]
        for _, node in _walk(_schema())
        for v in node.get("x-kubernetes-validations", [])
    }
    assert {r.cel: r.message for r in api_rules()} == cel


def test_subresources_and_columns() -> None:
    version = build_crd()["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.scaling.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Model", "Ready", "Target", "Queue", "Status", "Age"} <= columns


def test_names() -> None:
    crd = build_crd()
    assert crd["metadata"]["name"] == "modeldeployments.modeldeploy.dev"
    assert crd["spec"]["names"]["shortNames"] == ["md"]


def test_optional_sections_default_to_their_filled_in_defaults() -> None:
    spec = _schema()["properties"]["spec"]
    defaults = ModelDeploymentSpec.model_validate({"model": {"source": "hf://a/b"}})
    for section in ("engine", "resources", "scaling", "endpoint", "ray"):
        expected = getattr(defaults, section).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        assert spec["properties"][section]["default"] == expected, section
    assert spec["required"] == ["model"]


def test_committed_file_is_yaml_crd() -> None:
    loaded = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    assert loaded["kind"] == "CustomResourceDefinition"
