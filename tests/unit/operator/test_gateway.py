"""The namespace's gateway: its config, ConfigMap, Deployment and Service, built from the
namespace's ModelDeployments; and the traffic counts that reach the status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modeldeploy_operator.api import ModelDeployment
from modeldeploy_operator.builders.gateway import (
    CONFIG_HASH_ANNOTATION,
    GATEWAY_NAME,
    Location,
    build_gateway_config,
    build_gateway_configmap,
    build_gateway_deployment,
    build_gateway_service,
    cluster_location,
    local_secret,
    mounted_secret,
    referenced_secrets,
    secret_problems,
    secret_refs,
    secret_variable,
)
from modeldeploy_operator.builders.serving_config import build_serving_config
from modeldeploy_operator.common.validation import validate_object
from modeldeploy_operator.decide.conditions import Observation, build_status
from modeldeploy_operator.decide.traffic import (
    TrafficCounts,
    overflow_percent,
    traffic_from_metrics,
)
from modeldeploy_serving.config import ServingConfig
from modeldeploy_serving.gateway.config import GatewayConfig, SecretSource
from tests.api_cases import merge
from tests.operator_factories import BASE

OVERFLOW = {
    "baseUrl": "https://api.example.com/v1",
    "model": "gpt-4o-mini",
    "apiKeySecretRef": {"name": "provider", "key": "token"},
    "when": ["Saturated"],
    "maxQueueWaitSeconds": 2,
}


def md(name: str, spec: dict[str, Any] | None = None) -> ModelDeployment:
    doc = merge(BASE, {"metadata": {"name": name, "uid": f"uid-{name}"}, "spec": spec or {}})
    doc["spec"]["model"]["servedModelName"] = name
    return ModelDeployment.model_validate(doc)


def namespace_mds() -> list[ModelDeployment]:
    return [
        md("chat", {"overflow": OVERFLOW, "endpoint": {"apiKeysSecretRef": {"name": "keys"}}}),
        md("private", {"privacy": {"localOnly": True}, "scaling": {"maxQueuedRequests": 7}}),
        md("open"),
    ]


def served(mds: list[ModelDeployment]) -> list[tuple[ModelDeployment, ServingConfig]]:
    return [(m, build_serving_config(m)) for m in mds]


def config() -> GatewayConfig:
    return build_gateway_config(served(namespace_mds()), cluster_location("team"), mounted_secret)


def test_one_route_per_model_sorted_with_cluster_addresses() -> None:
    routes = {r.name: r for r in config().routes}
    assert list(routes) == ["chat", "open", "private"]
    chat = routes["chat"]
    assert chat.base_url == "http://chat.team.svc:8000"
    assert chat.dashboard_url == "http://chat-head.team.svc:8265"
    assert chat.api_keys == SecretSource(file="/etc/modeldeploy/secrets/keys/api-keys")
    assert chat.overflow is not None
    assert chat.overflow.api_key == SecretSource(file="/etc/modeldeploy/secrets/provider/token")
    assert chat.overflow.when == ("Saturated",) and chat.overflow.max_queue_wait_s == 2
    assert routes["private"].local_only and routes["private"].overflow is None
    assert routes["private"].max_queued_requests == 7
    # The engine's batch (vLLM's default here) and what Serve admits: a second batch waiting.
    assert (chat.slots_per_replica, chat.admitted_per_replica) == (256, 512)
    assert routes["open"].api_keys is None


def test_overflow_model_is_also_a_hosted_route_behind_the_same_keys() -> None:
    [hosted] = config().hosted
    assert hosted.name == "gpt-4o-mini"
    assert hosted.api_keys == SecretSource(file="/etc/modeldeploy/secrets/keys/api-keys")
    # A local model of the same name wins: no hosted route shadows it.
    clash = [md("gpt-4o-mini"), md("chat", {"overflow": OVERFLOW})]
    assert (
        build_gateway_config(served(clash), cluster_location("team"), mounted_secret).hosted == ()
    )


def test_a_served_name_taken_twice_routes_to_the_first_by_name() -> None:
    twins = [md("b"), md("a")]
    for twin in twins:
        twin.spec.model.served_model_name = "same"
    [route] = build_gateway_config(served(twins), cluster_location("team"), mounted_secret).routes
    assert route.app_name == "a"


def test_missing_secrets_are_named_by_field() -> None:
    chat = namespace_mds()[0]
    refs = secret_refs(chat)
    assert [r[0] for r in refs] == [
        "spec.endpoint.apiKeysSecretRef",
        "spec.overflow.apiKeySecretRef",
    ]
    assert secret_problems(refs, {"keys": {"api-keys"}, "provider": {"token"}}) == []
    assert secret_problems(refs, {"keys": {"other"}}) == [
        "spec.endpoint.apiKeysSecretRef: Secret 'keys' has no key 'api-keys'",
        "spec.overflow.apiKeySecretRef: Secret 'provider' does not exist",
    ]
    assert secret_refs(namespace_mds()[2]) == []


def test_a_rejected_base_url_is_not_repeated_in_the_message() -> None:
    doc = merge(BASE, {"spec": {"overflow": {**OVERFLOW, "baseUrl": "https://u:s3cret@h/v1"}}})
    [problem] = validate_object(doc)
    assert problem.path == "spec.overflow.baseUrl" and "s3cret" not in problem.message


def test_config_never_holds_a_secret_value_only_where_it_is() -> None:
    text = config().to_json()
    assert "/etc/modeldeploy/secrets/provider/token" in text
    assert referenced_secrets(config()) == ["keys", "provider"]


def test_deployment_mounts_config_and_each_secret_read_only() -> None:
    deployment = build_gateway_deployment("team", namespace_mds(), config())
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert set(mounts) == {
        "/etc/modeldeploy/gateway",
        "/etc/modeldeploy/secrets/keys",
        "/etc/modeldeploy/secrets/provider",
    }
    assert all(m["readOnly"] for m in mounts.values())
    secrets = sorted(v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v)
    assert secrets == ["keys", "provider"]
    assert pod["automountServiceAccountToken"] is False  # no API access needed
    assert container["args"][0] == "/etc/modeldeploy/gateway/config.json"
    # Secret files are root-owned on a kubelet: mode 0440 is readable only through the group.
    modes = {v["secret"]["defaultMode"] for v in pod["volumes"] if "secret" in v}
    assert modes == {0o440}
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]


def test_every_model_owns_the_gateway_none_controls_it() -> None:
    service = build_gateway_service("team", namespace_mds())
    refs = service["metadata"]["ownerReferences"]
    assert [r["name"] for r in refs] == ["chat", "open", "private"]
    assert not any(r.get("controller") for r in refs)
    assert service["metadata"]["name"] == GATEWAY_NAME
    assert (
        service["spec"]["selector"]
        == build_gateway_deployment("team", namespace_mds(), config())["spec"]["selector"][
            "matchLabels"
        ]
    )


def test_a_route_change_rolls_the_pods_a_key_rotation_does_not() -> None:
    before = build_gateway_deployment("team", namespace_mds(), config())
    changed = build_gateway_config(
        served([*namespace_mds(), md("extra")]), cluster_location("team"), mounted_secret
    )
    after = build_gateway_deployment("team", namespace_mds(), changed)
    hash_of = lambda d: d["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]  # noqa: E731
    assert hash_of(before) != hash_of(after)
    assert hash_of(before) == hash_of(build_gateway_deployment("team", namespace_mds(), config()))
    configmap = build_gateway_configmap("team", namespace_mds(), config())
    assert GatewayConfig.model_validate_json(configmap["data"]["config.json"]) == config()


def test_local_run_reads_secrets_from_the_environment_or_a_folder(tmp_path: Path) -> None:
    resolve = local_secret(tmp_path, {secret_variable("provider", "token"): "x"})
    assert resolve("provider", "token") == SecretSource(env="MODELDEPLOY_SECRET_PROVIDER_TOKEN")
    assert resolve("keys", "api-keys") == SecretSource(file=str(tmp_path / "keys" / "api-keys"))

    def locate(m: ModelDeployment) -> Location:
        return Location(f"http://127.0.0.1:9/{m.metadata['name']}", str(m.metadata["name"]), None)

    routes = build_gateway_config(served(namespace_mds()), locate, resolve).routes
    assert [r.dashboard_url for r in routes] == [None, None, None]


METRICS = """\
# TYPE modeldeploy_gateway_requests counter
modeldeploy_gateway_requests_total{model="chat",reason="Ready",served_by="local"} 30.0
modeldeploy_gateway_requests_total{model="chat",reason="Saturated",served_by="local"} 2.0
modeldeploy_gateway_requests_total{model="chat",reason="Saturated",served_by="overflow"} 8.0
modeldeploy_gateway_requests_total{model="chat",reason="QueueFull",served_by="rejected"} 1.0
modeldeploy_gateway_requests_total{model="other",reason="Ready",served_by="local"} 5.0
"""


def test_traffic_from_the_gateway_counters() -> None:
    counts = traffic_from_metrics(METRICS, "chat")
    assert counts == TrafficCounts(local=32, overflow=8, rejected=1)
    assert overflow_percent(counts) == 20.0
    assert overflow_percent(TrafficCounts()) is None
    assert overflow_percent(TrafficCounts(rejected=9)) is None  # 429s are not traffic that left


def test_status_shows_traffic_and_keeps_it_when_the_gateway_is_silent() -> None:
    obs = Observation(generation=1, endpoint="e", selector="s", traffic=TrafficCounts(3, 1, 0))
    status = build_status(obs, {}, "2026-01-01T00:00:00Z")
    assert status["traffic"] == {"local": 3, "overflow": 1, "rejected": 0, "overflowPercent": 25.0}
    silent = Observation(generation=1, endpoint="e", selector="s")
    assert build_status(silent, status, "2026-01-01T00:00:05Z")["traffic"] == status["traffic"]
    assert "traffic" not in build_status(silent, {}, "2026-01-01T00:00:05Z")
