"""The Serve config submitted to a head's dashboard, and reading Serve's status back."""

from __future__ import annotations

from typing import Any

from modeldeploy_operator.dashboard import ServeObservation
from modeldeploy_operator.serve_app import (
    build_serve_config,
    deployed_application_hash,
    desired_application_hash,
)
from modeldeploy_operator.serving_config import build_serving_config
from tests.operator_factories import make_md


def config(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    md = make_md(spec)
    return build_serve_config("llm", build_serving_config(md), md.spec.scaling)


def test_config_shape() -> None:
    built = config({"scaling": {"minReplicas": 1, "maxReplicas": 3}})
    assert built["http_options"] == {"host": "0.0.0.0", "port": 8000}
    assert built["proxy_location"] == "EveryNode"
    [app] = built["applications"]
    assert app["name"] == "llm" and app["route_prefix"] == "/"
    assert app["import_path"] == "modeldeploy_serving.app:app_builder"
    assert app["args"]["model"] == "openai/gpt-oss-20b"
    assert app["deployments"] == [
        {
            "name": "VLLMServer",
            "autoscaling_config": {"min_replicas": 1, "max_replicas": 3, "initial_replicas": 1},
        }
    ]


def test_external_mode_sets_replica_count() -> None:
    built = config({"scaling": {"mode": "external", "replicas": 2, "maxReplicas": 4}})
    assert built["applications"][0]["deployments"][0] == {"name": "VLLMServer", "num_replicas": 2}


def test_scaling_change_keeps_args_engine_change_does_not() -> None:
    base = config()["applications"][0]["args"]
    assert config({"scaling": {"maxReplicas": 5}})["applications"][0]["args"] == base
    engine = config({"engine": {"maxModelLen": 4096}})["applications"][0]["args"]
    assert engine != base and engine["engine"]["max_model_len"] == 4096


def test_deployed_hash_matches_desired_only_for_same_config() -> None:
    desired = config()
    [app] = desired["applications"]
    instance = {"applications": {"llm": {"deployed_app_config": dict(app)}}}
    assert deployed_application_hash(instance, "llm") == desired_application_hash(desired)
    changed = config({"scaling": {"maxReplicas": 2}})
    assert deployed_application_hash(instance, "llm") != desired_application_hash(changed)
    assert deployed_application_hash({"applications": {}}, "llm") is None
    assert deployed_application_hash({}, "llm") is None


def test_serve_observation_counts_replicas() -> None:
    instance = {
        "applications": {
            "llm": {
                "status": "RUNNING",
                "message": "",
                "deployments": {
                    "VLLMServer": {
                        "status": "UPSCALING",
                        "message": "",
                        "target_num_replicas": 3,
                        "replicas": [
                            {"state": "RUNNING", "node_ip": "10.0.0.1"},
                            {"state": "STARTING", "node_ip": "10.0.0.2"},
                            {"state": "STOPPING", "node_ip": "10.0.0.3"},
                        ],
                    }
                },
            }
        }
    }
    observed = ServeObservation.from_instance(instance, "llm")
    assert (observed.replicas, observed.ready_replicas, observed.target_replicas) == (2, 1, 3)
    assert observed.busy_node_ips == frozenset({"10.0.0.1", "10.0.0.2"})
    assert observed.app_status == "RUNNING"
    assert ServeObservation.from_instance(instance, "other") == ServeObservation()
