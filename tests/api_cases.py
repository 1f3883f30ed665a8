"""Loads tests/data/api-cases.yaml: shared by the unit tier (pydantic) and the e2e tier (CEL)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

CASES_FILE = Path(__file__).parent / "data" / "api-cases.yaml"


def load_cases() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
    return loaded


def merge(base: Any, patch: Any) -> Any:
    """Deep-merge patch into a copy of base; a None value removes the key."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge(merged.get(key), value) if key in merged else copy.deepcopy(value)
    return merged


def document(patch: dict[str, Any]) -> dict[str, Any]:
    """The base ModelDeployment with patch applied."""
    result: dict[str, Any] = merge(load_cases()["base"], patch)
    return result
