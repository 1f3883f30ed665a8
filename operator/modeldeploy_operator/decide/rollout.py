"""Rolling a changed model or engine onto new replicas without dropping the endpoint.

Ray Serve rolls a code change (new application `args`) by stopping old replicas as new ones
start, so a deployment of one replica has none for as long as an engine takes to load (minutes
for a large model). Serve never stops an old replica while new ones are still pending below the
deployment's target, so the operator submits a code change with one replica more than runs now
(a surge): the old replicas keep serving until the new version runs as many, and then the real
replica counts go out as a lightweight update (no restart), which also stops the extra replica
Serve has begun starting by then. Where the surge replica finds no free GPU, the old replicas
keep serving and the worker planner asks for one more worker pod (`workers.target_replicas`),
whose Pending state says why the roll waits.

Pure: decides from the desired config and what the dashboard reports.
"""

from __future__ import annotations

import copy
from typing import Any

from ..builders.ray_serve_config import application_hash
from ..common.hashing import canonical_hash

SURGE = 1
"""Extra replicas while a new model or engine version starts."""

STATUS_LAG_S = 10.0
"""How long after a submission Serve's reported deployment status may still be the one from
before it (the controller updates it on its next loop)."""

_CODE_KEYS = ("name", "route_prefix", "import_path", "args")


def code_hash(app: dict[str, Any]) -> str:
    """Hash of what Serve restarts replicas for: the application's code and args, and the
    autoscaling policy with its kwargs, which Serve counts in the code version too (a changed
    scaling delay restarts replicas: it gets the surge an engine change gets)."""
    policies = [
        (deployment.get("autoscaling_config") or {}).get("policy")
        for deployment in app.get("deployments") or []
    ]
    return canonical_hash({**{key: app.get(key) for key in _CODE_KEYS}, "policies": policies})


def replica_floor(app: dict[str, Any]) -> int:
    """The fewest replicas an application entry asks for."""
    [deployment] = app["deployments"]
    autoscaling = deployment.get("autoscaling_config")
    if autoscaling:
        return int(autoscaling["min_replicas"])
    return int(deployment.get("num_replicas") or 0)


def surged(config: dict[str, Any], floor: int) -> dict[str, Any]:
    """`config` with at least `floor` replicas (the bounds widened to allow them)."""
    result = copy.deepcopy(config)
    [deployment] = result["applications"][0]["deployments"]
    autoscaling = deployment.get("autoscaling_config")
    if autoscaling:
        autoscaling["min_replicas"] = max(autoscaling["min_replicas"], floor)
        autoscaling["max_replicas"] = max(autoscaling["max_replicas"], floor)
        autoscaling["initial_replicas"] = max(autoscaling.get("initial_replicas") or 0, floor)
    else:
        deployment["num_replicas"] = max(deployment["num_replicas"], floor)
    return result


def config_to_submit(
    desired: dict[str, Any], instance: dict[str, Any], app_name: str, now: float
) -> dict[str, Any] | None:
    """The Serve config to PUT now, or None when what is deployed should stay as it is.

    `desired` is `build_serve_config(...)`; `instance` is the dashboard's GET
    /api/serve/applications/ answer; `now` is the time in seconds since the epoch.
    """
    [wanted] = desired["applications"]
    app = (instance.get("applications") or {}).get(app_name) or {}
    deployed = app.get("deployed_app_config")
    if not deployed:
        return desired
    if application_hash(deployed) == application_hash(wanted):
        return None
    running = _replicas(app, "RUNNING")
    if code_hash(deployed) != code_hash(wanted):
        # Nothing running means nothing to keep serving (scaled to zero, or a failed deploy).
        return surged(desired, len(running) + SURGE) if running else desired
    # Same code, other counts: a changed bound, or a surge still in place.
    deployment: dict[str, Any] = next(iter((app.get("deployments") or {}).values()), {})
    started_since = float(app.get("last_deployed_time_s") or 0)
    if deployment.get("status") != "UPDATING":
        # Just after a surged submission the status can still read HEALTHY from before it;
        # sending the real counts then would stop the old replicas before a new one runs.
        return None if now - started_since < STATUS_LAG_S else desired
    new = [r for r in running if float(r.get("start_time_s") or 0) >= started_since]
    return desired if len(new) >= replica_floor(deployed) - SURGE else None


def _replicas(app: dict[str, Any], state: str) -> list[dict[str, Any]]:
    return [
        replica
        for deployment in (app.get("deployments") or {}).values()
        for replica in deployment.get("replicas") or []
        if replica.get("state") == state
    ]
