"""Which Serve config the operator submits, and when: plain deploys, bound changes, and a new
model or engine version rolled out with a surge replica."""

from __future__ import annotations

from typing import Any

from modeldeploy_operator.builders.ray_serve_config import build_serve_config
from modeldeploy_operator.builders.serving_config import build_serving_config
from modeldeploy_operator.decide.rollout import (
    STATUS_LAG_S,
    config_to_submit,
    replica_floor,
    surged,
)
from tests.operator_factories import make_md

BASE = {"scaling": {"minReplicas": 1, "maxReplicas": 3}}


def config(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return build_serve_config("llm", build_serving_config(make_md(spec or BASE)))


LATER = 1000.0
"""A reconcile long after the last submission (at 100.0): Serve's status has caught up."""


def replica(state: str, started: float) -> dict[str, Any]:
    return {"state": state, "start_time_s": started}


def instance(
    deployed: dict[str, Any],
    replicas: list[dict[str, Any]],
    status: str = "HEALTHY",
    deployed_at: float = 100.0,
) -> dict[str, Any]:
    [app] = deployed["applications"]
    return {
        "applications": {
            "llm": {
                "deployed_app_config": app,
                "last_deployed_time_s": deployed_at,
                "deployments": {"VLLMServer": {"status": status, "replicas": replicas}},
            }
        }
    }


def test_first_deploy_and_unchanged_config() -> None:
    desired = config()
    assert config_to_submit(desired, {}, "llm", LATER) == desired
    assert (
        config_to_submit(desired, instance(desired, [replica("RUNNING", 1)]), "llm", LATER) is None
    )


def test_a_bound_change_goes_out_as_is() -> None:
    deployed, desired = config(), config({"scaling": {"minReplicas": 1, "maxReplicas": 5}})
    assert (
        config_to_submit(desired, instance(deployed, [replica("RUNNING", 1)]), "llm", LATER)
        == desired
    )


def test_an_engine_change_surges_one_replica_above_what_runs() -> None:
    deployed = config()
    desired = config({**BASE, "engine": {"maxModelLen": 2048}})
    running = [replica("RUNNING", 1), replica("RUNNING", 2)]
    submitted = config_to_submit(desired, instance(deployed, running), "llm", LATER)
    assert submitted is not None and submitted != desired
    assert submitted["applications"][0]["args"] == desired["applications"][0]["args"]
    assert replica_floor(submitted["applications"][0]) == 3
    scaling = submitted["applications"][0]["deployments"][0]["autoscaling_config"]
    bounds = (scaling["min_replicas"], scaling["max_replicas"], scaling["initial_replicas"])
    assert bounds == (3, 3, 3)


def test_a_scaling_delay_change_restarts_replicas_so_it_surges_too() -> None:
    """Serve counts the autoscaling policy's kwargs (the delays) in the code version; the
    target and bounds travel outside them and go out as they are."""
    deployed = config()
    running = instance(deployed, [replica("RUNNING", 1)])
    delayed = config({"scaling": {**BASE["scaling"], "scaleDownDelaySeconds": 60}})
    assert config_to_submit(delayed, running, "llm", LATER) == surged(delayed, 2)
    target = config({"scaling": {**BASE["scaling"], "targetQueueDepth": 7}})
    assert config_to_submit(target, running, "llm", LATER) == target


def test_an_engine_change_with_nothing_running_is_submitted_plainly() -> None:
    deployed = config()
    desired = config({**BASE, "engine": {"maxModelLen": 2048}})
    assert (
        config_to_submit(desired, instance(deployed, [replica("STARTING", 1)]), "llm", LATER)
        == desired
    )


def test_the_surge_stays_until_the_new_version_serves_as_many_replicas_as_before() -> None:
    desired = config({**BASE, "engine": {"maxModelLen": 2048}})
    in_place = surged(desired, 2)  # one replica ran before the change
    old, new_starting = replica("RUNNING", 50.0), replica("STARTING", 101.0)
    assert (
        config_to_submit(desired, instance(in_place, [old, new_starting], "UPDATING"), "llm", LATER)
        is None
    )
    # The new replica runs, the old one drains: the real counts go out.
    new_running, old_stopping = replica("RUNNING", 101.0), replica("STOPPING", 50.0)
    rolled = instance(in_place, [new_running, old_stopping, replica("STARTING", 160.0)], "UPDATING")
    assert config_to_submit(desired, rolled, "llm", LATER) == desired
    # Once Serve reports the deployment settled, whatever the replicas, the counts go out too.
    assert config_to_submit(desired, instance(in_place, [old], "HEALTHY"), "llm", LATER) == desired


def test_external_mode_surges_the_fixed_count() -> None:
    spec = {"scaling": {"mode": "external", "replicas": 2, "maxReplicas": 2}}
    deployed, desired = config(spec), config({**spec, "engine": {"maxModelLen": 2048}})
    running = [replica("RUNNING", 1), replica("RUNNING", 2)]
    submitted = config_to_submit(desired, instance(deployed, running), "llm", LATER)
    assert submitted is not None
    assert submitted["applications"][0]["deployments"][0]["num_replicas"] == 3


def test_a_surge_just_submitted_stays_while_serve_still_reports_the_old_status() -> None:
    # Serve updates a deployment's status on its next control loop: a reconcile right after the
    # surged submission can read HEALTHY. Sending the real counts then stopped the old replica
    # before the new one ran (the endpoint went without a replica during the roll).
    desired = config({**BASE, "engine": {"maxModelLen": 2048}})
    in_place = surged(desired, 2)
    just_after = instance(in_place, [replica("RUNNING", 50.0)], "HEALTHY", deployed_at=100.0)
    assert config_to_submit(desired, just_after, "llm", now=101.0) is None
    assert config_to_submit(desired, just_after, "llm", now=100.0 + STATUS_LAG_S) == desired
