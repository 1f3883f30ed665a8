"""Kubernetes quantity arithmetic the builders need (Ray wants whole CPU counts)."""

from __future__ import annotations

import math
from decimal import Decimal

_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(quantity: str) -> Decimal:
    """'500m' -> 0.5, '64Gi' -> 68719476736; the forms the API's pattern admits."""
    text = quantity.strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            return Decimal(text[: -len(suffix)]) * _SUFFIXES[suffix]
    return Decimal(text)


def whole_cpus(quantity: str) -> int:
    """CPUs Ray may schedule on a pod with this CPU request: rounded down, at least 1."""
    return max(1, math.floor(parse_quantity(quantity)))
