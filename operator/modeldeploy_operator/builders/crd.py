"""Generates the ModelDeployment CustomResourceDefinition from the pydantic models.

pydantic emits JSON Schema (with $refs, anyOf-with-null for optional fields, titles); Kubernetes
wants a structural OpenAPI v3 schema (everything inlined, one type per node, no nulls). The
conversion below is pure, so the committed CRD can be compared against a fresh generation.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from ..api import GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION, ModelDeployment

Schema = dict[str, Any]

# JSON Schema keywords that Kubernetes either rejects or has no use for.
_DROPPED_KEYS = {"title", "$defs"}


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Inline $ref (keeping the referring node's own keys, e.g. a field's description)."""
    if "$ref" not in node:
        return node
    target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
    siblings = {k: v for k, v in node.items() if k != "$ref"}
    return {**_resolve(target, defs), **siblings}


def _drop_null_branch(node: Schema) -> Schema:
    """`X | None` arrives as anyOf [X, null]: an absent field means None, so keep X only."""
    branches = node.get("anyOf")
    if not branches:
        return node
    kept = [b for b in branches if b.get("type") != "null"]
    if len(kept) == len(branches) or len(kept) != 1:
        return node
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if rest.get("default", "sentinel") is None:
        del rest["default"]
    return {**kept[0], **rest}


def to_structural(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Turn one pydantic JSON Schema node into a structural Kubernetes schema node."""
    node = _resolve(_drop_null_branch(_resolve(node, defs)), defs)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: to_structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = to_structural(value, defs)
        elif key == "additionalProperties":
            if value is False:
                continue  # extra="forbid": the apiserver prunes unknown fields instead
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            else:
                out[key] = to_structural(value, defs)
        elif key == "const":
            out["enum"] = [value]
        elif key == "exclusiveMinimum":
            # JSON Schema 2020 gives the bound; OpenAPI v3.0 wants minimum + a flag.
            out["minimum"] = value
            out["exclusiveMinimum"] = True
        elif key == "exclusiveMaximum":
            out["maximum"] = value
            out["exclusiveMaximum"] = True
        elif key == "anyOf" and not node.get("x-kubernetes-int-or-string"):
            raise ValueError(f"cannot express anyOf in a structural schema: {node}")
        else:
            out[key] = value
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out.setdefault("x-kubernetes-preserve-unknown-fields", True)
    return out


def openapi_schema() -> Schema:
    """The CRD's openAPIV3Schema for ModelDeployment."""
    raw = ModelDeployment.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    schema = to_structural(raw, defs)
    schema["properties"]["metadata"] = {"type": "object"}
    schema["properties"]["status"].pop("default", None)
    return schema


PRINTER_COLUMNS = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.source"},
    {
        "name": "Ready",
        "type": "integer",
        "jsonPath": ".status.readyReplicas",
        "description": "Replicas serving requests.",
    },
    {
        "name": "Target",
        "type": "integer",
        "jsonPath": ".status.targetReplicas",
        "description": "Replicas the autoscaler wants.",
    },
    {
        "name": "Queue",
        "type": "integer",
        "jsonPath": ".status.queueDepth",
        "description": "Requests waiting.",
    },
    {
        "name": "Overflow%",
        "type": "number",
        "jsonPath": ".status.traffic.overflowPercent",
        "description": "Percent of requests the overflow provider served (through the gateway).",
    },
    {
        "name": "Status",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint", "priority": 1},
    {
        "name": "Fit",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="FitCheck")].reason',
        "description": "The GPU fit check: Passed, Warning, Failed, or why it was not made.",
        "priority": 1,
    },
    {
        "name": "Verified",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="ModelVerified")].status',
        "description": "Whether replicas verified the pinned weights' digests.",
        "priority": 1,
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_crd() -> dict[str, Any]:
    """The complete CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["all"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.scaling.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }


def render_crd() -> str:
    header = "# Generated from the pydantic models by `modeldeploy crd`; do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)
