"""The ModelDeployment a child belongs to, as the builders need it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api import API_VERSION, KIND, ModelDeploymentSpec


@dataclass(frozen=True)
class Owner:
    """Identity of one ModelDeployment plus its validated spec."""

    name: str
    namespace: str
    uid: str
    spec: ModelDeploymentSpec

    def reference(self) -> dict[str, Any]:
        # controller=True makes the ModelDeployment the managing owner; blockOwnerDeletion keeps
        # foreground deletion waiting for the children.
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
