"""Pure builders of the head and endpoint Services."""

from __future__ import annotations

from modeldeploy_operator.builders.owner import Owner
from modeldeploy_operator.builders.services import build_endpoint_service, build_head_service
from tests.operator_factories import make_owner


def test_head_service_selects_only_the_head(owner: Owner) -> None:
    service = build_head_service(owner)
    assert service["metadata"]["name"] == "llm-head"
    assert service["spec"]["selector"] == {
        "modeldeploy.dev/name": "llm",
        "app.kubernetes.io/component": "ray-head",
    }
    assert {p["port"] for p in service["spec"]["ports"]} == {6379, 8265, 10001, 8080}


def test_endpoint_service_fronts_every_serve_proxy(owner: Owner) -> None:
    service = build_endpoint_service(owner)
    assert service["metadata"]["name"] == "llm"
    assert service["spec"]["selector"] == {
        "modeldeploy.dev/name": "llm",
        "modeldeploy.dev/serve-proxy": "true",
    }
    [port] = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (8000, 8000)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["metadata"]["ownerReferences"][0]["name"] == "llm"


def test_endpoint_service_takes_spec_settings() -> None:
    owner = make_owner(
        {
            "endpoint": {
                "port": 80,
                "serviceType": "LoadBalancer",
                "labels": {"team": "search", "modeldeploy.dev/name": "spoofed"},
                "annotations": {"lb/internal": "true"},
            }
        }
    )
    service = build_endpoint_service(owner)
    assert service["spec"]["ports"][0]["port"] == 80
    assert service["spec"]["ports"][0]["targetPort"] == 8000
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["labels"]["team"] == "search"
    # Our own labels win: they are what selectors and garbage collection rely on.
    assert service["metadata"]["labels"]["modeldeploy.dev/name"] == "llm"
    assert service["metadata"]["annotations"]["lb/internal"] == "true"
