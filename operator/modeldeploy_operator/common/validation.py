"""Validating ModelDeployment documents with the API models, reporting one line per problem.

Each problem names the field path as it appears in the YAML (`spec.scaling.maxReplicas`) and what
was expected, so `modeldeploy validate` reads like the apiserver's own rejection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ..api import ModelDeployment
from ..api.base import RULE_ERROR_TYPE


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document: where it is and what was expected."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _allowed_fields(model: type[Any], loc: tuple[int | str, ...]) -> list[str]:
    """The wire names allowed at the parent of loc, for 'unknown field' messages."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = {f.alias or n: f for n, f in current.model_fields.items()}
        annotation = fields[str(part)].annotation if str(part) in fields else None
        current = _model_of(annotation)
        if current is None:
            return []
    return [f.alias or n for n, f in current.model_fields.items()]


def _model_of(annotation: Any) -> type[Any] | None:
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


# Values never repeated in a message: a URL may carry credentials, and messages reach the
# status, events and logs.
UNECHOED_FIELDS = frozenset({"baseUrl", "base_url"})


def _problem(error: ErrorDetails) -> Problem:
    loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    if error["type"] == RULE_ERROR_TYPE:
        return Problem(_field_path((*loc, *str(ctx["field"]).split("."))), error["msg"])
    if error["type"] == "extra_forbidden":
        allowed = _allowed_fields(ModelDeployment, loc)
        hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        return Problem(_field_path(loc), f"unknown field{hint}")
    if error["type"] == "missing":
        return Problem(_field_path(loc), "required field is missing")
    if loc and loc[-1] in UNECHOED_FIELDS:
        return Problem(_field_path(loc), str(error["msg"]))
    return Problem(_field_path(loc), f"{error['msg']} (got {error.get('input')!r})")


def _errors(obj: dict[str, Any]) -> list[ErrorDetails]:
    try:
        ModelDeployment.model_validate(obj)
    except ValidationError as exc:
        return exc.errors(include_url=False)
    return []


def _without(obj: Any, loc: tuple[int | str, ...]) -> Any:
    """A copy of obj with the key at loc removed."""
    if not loc:
        return obj
    if isinstance(obj, dict):
        head, rest = loc[0], loc[1:]
        if not rest:
            return {k: v for k, v in obj.items() if k != head}
        return {k: (_without(v, rest) if k == head else v) for k, v in obj.items()}
    if isinstance(obj, list) and isinstance(loc[0], int) and loc[0] < len(obj):
        return [_without(v, loc[1:]) if i == loc[0] else v for i, v in enumerate(obj)]
    return obj


def validate_object(obj: Any) -> list[Problem]:
    """Problems of one parsed document; empty when it is a valid ModelDeployment."""
    if not isinstance(obj, dict):
        return [Problem("", f"expected a ModelDeployment mapping, got {type(obj).__name__}")]
    errors = _errors(obj)
    unknown = [tuple(e["loc"]) for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        # An unknown field stops pydantic before the cross-field rules of its object; check the
        # document once more without those fields, so one run reports every problem.
        for loc in unknown:
            obj = _without(obj, loc)
        errors += [e for e in _errors(obj) if e["type"] == RULE_ERROR_TYPE]
    problems: list[Problem] = []
    for problem in map(_problem, errors):
        if problem not in problems:
            problems.append(problem)
    return problems


def parse_model_deployment(obj: Any) -> ModelDeployment:
    """Validate one document, raising ValueError with every problem when it is invalid."""
    problems = validate_object(obj)
    if problems:
        raise ValueError("invalid ModelDeployment:\n" + "\n".join(f"  {p}" for p in problems))
    return ModelDeployment.model_validate(obj)


def validate_text(text: str) -> list[tuple[int, list[Problem]]]:
    """(document index, problems) for every non-empty document of a multi-document YAML text."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        return [(0, [Problem("", f"not valid YAML: {exc}")])]
    return [(i, validate_object(doc)) for i, doc in enumerate(documents) if doc is not None]
