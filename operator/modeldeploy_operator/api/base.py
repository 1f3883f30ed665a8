"""Base model and cross-field rules shared by every part of the ModelDeployment API.

A cross-field rule is written once, as a `Rule`: its CEL expression goes into the generated CRD
(`x-kubernetes-validations`, so the apiserver rejects a bad spec at `kubectl apply` time) and its
Python predicate runs in pydantic validation (CLI, operator). Both carry the same message and the
same field path, so a user sees one wording whichever side rejects the spec.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

RULE_ERROR_TYPE = "modeldeploy_rule"


@dataclass(frozen=True)
class Rule:
    """One cross-field rule, enforced identically by pydantic and by the apiserver (CEL)."""

    id: str
    field: str
    """Path of the offending field relative to the model the rule sits on, in camelCase and
    dotted (`maxReplicas`, `resources.gpusPerReplica`); it becomes the CEL `fieldPath`."""
    cel: str
    message: str
    holds: Callable[[Any], bool]
    """Python twin of `cel`: takes the validated model instance, True when the rule holds."""

    def x_kubernetes_validation(self) -> dict[str, str]:
        validation = {"rule": self.cel, "message": self.message}
        # The apiserver checks fieldPath against the schema, and metadata has no declared fields.
        if not self.field.startswith("metadata."):
            validation["fieldPath"] = "." + self.field
        return validation


class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> ApiModel:
        for rule in type(self).rules:
            if not rule.holds(self):
                raise PydanticCustomError(
                    RULE_ERROR_TYPE, rule.message, {"field": rule.field, "rule": rule.id}
                )
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if cls.rules:
            target = handler.resolve_ref_schema(json_schema)
            target["x-kubernetes-validations"] = [r.x_kubernetes_validation() for r in cls.rules]
        return json_schema


def all_rules(*models: type[ApiModel]) -> list[tuple[type[ApiModel], Rule]]:
    """Every rule on the given models and on the models nested in them, each once."""
    seen: set[type[ApiModel]] = set()
    found: list[tuple[type[ApiModel], Rule]] = []

    def visit(model: type[ApiModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        found.extend((model, rule) for rule in model.rules)
        for field in model.model_fields.values():
            for nested in _models_in(field.annotation):
                visit(nested)

    for model in models:
        visit(model)
    return found


def _models_in(annotation: Any) -> list[type[ApiModel]]:
    if isinstance(annotation, type) and issubclass(annotation, ApiModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def fullmatch(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None
