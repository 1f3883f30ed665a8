"""Change detection: a canonical hash of a desired object, stored in an annotation.

The operator patches or replaces a child only when the hash of what it would build differs from
the hash on the live object, so repeated reconciles (timer, resume) change nothing and an object
edited by hand is put back.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .names import SPEC_HASH_ANNOTATION


def canonical_hash(obj: Any) -> str:
    encoded = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:16]


def stamped(obj: dict[str, Any]) -> dict[str, Any]:
    """obj with the hash of its own content in the spec-hash annotation."""
    digest = canonical_hash(obj)
    annotations = obj.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[SPEC_HASH_ANNOTATION] = digest
    return obj


def hash_of(live: dict[str, Any]) -> str | None:
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(SPEC_HASH_ANNOTATION)
    return value if isinstance(value, str) else None
