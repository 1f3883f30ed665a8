"""The Serve config submitted to a head's dashboard, and reading Serve's status back."""

from __future__ import annotations

from typing import Any

from modeldeploy_operator.builders.ray_serve_config import build_serve_config
from modeldeploy_operator.builders.serving_config import build_serving_config
from modeldeploy_operator.decide.serve_status import ServeObservation
from tests.operator_factories import make_md


def config(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return build_serve_config("llm", build_serving_config(make_md(spec)))


def test_config_shape() -> None:
    built = config({"scaling": {"minReplicas": 1, "maxReplicas": 3}})
    assert built["http_options"] == {"host": "0.0.0.0", "port": 8000}
    assert built["proxy_location"] == "EveryNode"
    [app] = built["applications"]
    assert app["name"] == "llm" and app["route_prefix"] == "/"
    assert app["import_path"] == "modeldeploy_serving.app:app_builder"
    assert app["args"]["model"] == "openai/gpt-oss-20b"
    [deployment] = app["deployments"]
    assert deployment["name"] == "VLLMServer" and deployment["num_replicas"] is None
    autoscaling = deployment["autoscaling_config"]
    assert (autoscaling["min_replicas"], autoscaling["max_replicas"]) == (1, 3)
    assert autoscaling["policy"]["policy_function"] == (
        "modeldeploy_serving.autoscaling.ray_policy:QueueDepthPolicy"
    )
    # The target travels in Ray's own field, outside the kwargs: changing it restarts nothing.
    assert autoscaling["target_ongoing_requests"] == 2
    assert "target_queue_depth" not in autoscaling["policy"]["policy_kwargs"]
    assert deployment["max_queued_requests"] == 128
    # The application's own code carries neutral replica settings; the overrides decide.
    assert (app["args"]["num_replicas"], app["args"]["autoscaling"]) == (1, None)


def test_external_mode_sets_replica_count() -> None:
    built = config({"scaling": {"mode": "external", "replicas": 2, "maxReplicas": 4}})
    assert built["applications"][0]["deployments"][0] == {
        "name": "VLLMServer",
        "num_replicas": 2,
        "max_queued_requests": 128,
    }


def test_scaling_change_keeps_args_engine_change_does_not() -> None:
    base = config()["applications"][0]["args"]
    for scaling in ({"maxReplicas": 5}, {"targetQueueDepth": 8}, {"maxQueuedRequests": 3}):
        assert config({"scaling": scaling})["applications"][0]["args"] == base
    engine = config({"engine": {"maxModelLen": 4096}})["applications"][0]["args"]
    assert engine != base and engine["engine"]["max_model_len"] == 4096


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
    # The stopping replica still drains requests: its node counts as busy.
    assert observed.busy_node_ips == frozenset({"10.0.0.1", "10.0.0.2", "10.0.0.3"})
    assert observed.app_status == "RUNNING"
    assert ServeObservation.from_instance(instance, "other") == ServeObservation()


def test_configs_pass_ray_serves_own_schema() -> None:
    from ray.serve.schema import ServeDeploySchema

    for spec in (
        {},
        {"scaling": {"minReplicas": 0, "maxReplicas": 4}},
        {"scaling": {"mode": "external", "replicas": 3, "maxReplicas": 3}},
    ):
        ServeDeploySchema.model_validate(config(spec))


def test_queue_depth_from_head_metrics() -> None:
    from modeldeploy_operator.decide.serve_status import queue_depth_from_metrics

    text = "\n".join(
        [
            "# HELP ray_modeldeploy_queue_depth Requests waiting.",
            "# TYPE ray_modeldeploy_queue_depth gauge",
            'ray_modeldeploy_queue_depth{application="llm",deployment="VLLMServer",'
            'SessionName="s"} 7.0',
            'ray_modeldeploy_queue_depth{application="other",deployment="VLLMServer"} 40.0',
            'ray_serve_autoscaling_total_requests{application="llm"} 99.0',
        ]
    )
    assert queue_depth_from_metrics(text, "llm") == 7
    assert queue_depth_from_metrics(text, "other") == 40
    assert queue_depth_from_metrics(text, "absent") is None
    assert queue_depth_from_metrics("", "llm") is None
