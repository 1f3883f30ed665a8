"""The Ray Serve config (the body of the dashboard's PUT /api/serve/applications/), built purely
from a ModelDeployment's serving configuration and scaling spec.

Replica counts and the autoscaler's settings live in the config's `deployments` overrides, not
in the application's `args`:
Serve applies a change there as a lightweight update (no replica restart), while a change of
`args` (model or engine) rebuilds the application and rolls the replicas.
"""

from __future__ import annotations

from typing import Any

from modeldeploy_serving.autoscaling import ray_autoscaling_config
from modeldeploy_serving.config import ServingConfig

from ..common.hashing import canonical_hash
from ..common.names import SERVE_PORT

APP_IMPORT_PATH = "modeldeploy_serving.app:app_builder"
DEPLOYMENT_NAME = "VLLMServer"
APP_ROUTE_PREFIX = "/"


def replica_options(serving: ServingConfig) -> dict[str, Any]:
    """Serve deployment options that set how many replicas run and how many requests wait."""
    options: dict[str, Any] = {"max_queued_requests": serving.max_queued_requests}
    if serving.autoscaling is not None:
        # num_replicas null: the application code's fixed count (see args) must not apply.
        options["num_replicas"] = None
        options["autoscaling_config"] = ray_autoscaling_config(serving.autoscaling)
    else:
        options["num_replicas"] = serving.num_replicas
    return options


def build_serve_config(
    app_name: str, serving: ServingConfig, http_port: int = SERVE_PORT
) -> dict[str, Any]:
    """The declarative Serve config for the one application of this ModelDeployment's cluster."""
    # Fixed replica fields in args, so that args change only when the model or engine does.
    neutral = {
        "app_name": app_name,
        "num_replicas": 1,
        "autoscaling": None,
        "max_queued_requests": -1,
    }
    args = serving.model_copy(update=neutral).model_dump(mode="json")
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": "0.0.0.0", "port": http_port},
        "applications": [
            {
                "name": app_name,
                "route_prefix": APP_ROUTE_PREFIX,
                "import_path": APP_IMPORT_PATH,
                "args": args,
                "deployments": [{"name": DEPLOYMENT_NAME, **replica_options(serving)}],
            }
        ],
    }


_COMPARED_KEYS = ("name", "route_prefix", "import_path", "args", "deployments")


def application_hash(app: dict[str, Any]) -> str:
    """Hash of the parts of one application entry that we set."""
    return canonical_hash({key: app.get(key) for key in _COMPARED_KEYS})
