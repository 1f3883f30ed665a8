"""The namespace's gateway, built purely from the namespace's ModelDeployments.

One gateway per namespace gives one base URL for every model there (routing by the request's
`model`), checks API keys, and sends requests to an overflow provider when a model's replicas
are cold or saturated (modeldeploy_serving.gateway). The builders here turn the list of
ModelDeployments into:
- the gateway's config (`GatewayConfig`): one local route per model, one hosted route per
  distinct overflow model name; secrets appear only as file paths of mounted Secret keys;
- a ConfigMap holding it, a Deployment running it, and the Service `modeldeploy-gateway`.

The gateway itself needs no Kubernetes API access: its config arrives as a file and each
referenced Secret is mounted read-only, so no RBAC is granted to it. Every ModelDeployment of the
namespace is an owner (none of them the controller), so the objects go away with the last one.
The same `build_gateway_config` serves `modeldeploy serve -f FILE`, with local locations and
secrets read from files or the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modeldeploy_serving.config import VLLM_DEFAULT_MAX_NUM_SEQS, ServingConfig
from modeldeploy_serving.gateway.config import (
    GatewayConfig,
    HostedRoute,
    LocalRoute,
    OverflowTarget,
    SecretSource,
)

from ..api import API_VERSION, KIND, ModelDeployment
from ..common import names
from ..common.hashing import canonical_hash, stamped
from ..common.names import DEFAULT_DASHBOARD_URL, dashboard_url

GATEWAY_NAME = "modeldeploy-gateway"
GATEWAY_PORT = 8000
GATEWAY_COMPONENT = "gateway"
CONFIG_DIR = "/etc/modeldeploy/gateway"
CONFIG_FILE = "config.json"
SECRETS_DIR = "/etc/modeldeploy/secrets"
CONFIG_HASH_ANNOTATION = "modeldeploy.dev/gateway-config-hash"
DEFAULT_GATEWAY_IMAGE = "ghcr.io/modeldeploy/serving:0.1.0"
GATEWAY_URL_TEMPLATE = "http://" + GATEWAY_NAME + ".{namespace}.svc:" + str(GATEWAY_PORT)


@dataclass(frozen=True)
class Location:
    """Where one model's OpenAI API and its Serve application are."""

    base_url: str
    app_name: str
    dashboard_url: str | None


SecretResolver = Callable[[str, str], SecretSource]
Locator = Callable[[ModelDeployment], Location]


def mounted_secret(name: str, key: str) -> SecretSource:
    """A Secret key as the gateway pod sees it: a file of the Secret's volume."""
    return SecretSource(file=f"{SECRETS_DIR}/{name}/{key}")


def local_secret(secrets_dir: Path, environ: Mapping[str, str] = os.environ) -> SecretResolver:
    """Secret keys for a local run: the variable MODELDEPLOY_SECRET_<NAME>_<KEY> if set, else
    the file SECRETS_DIR/NAME/KEY (the layout Kubernetes gives a mounted Secret)."""

    def resolve(name: str, key: str) -> SecretSource:
        variable = secret_variable(name, key)
        if variable in environ:
            return SecretSource(env=variable)
        return SecretSource(file=str(secrets_dir / name / key))

    return resolve


def secret_variable(name: str, key: str) -> str:
    """The environment variable a local run reads a Secret key from."""
    return "MODELDEPLOY_SECRET_" + re.sub(r"[^A-Z0-9]", "_", f"{name}_{key}".upper())


def cluster_location(namespace: str, dashboard_template: str = DEFAULT_DASHBOARD_URL) -> Locator:
    def locate(md: ModelDeployment) -> Location:
        name = str(md.metadata["name"])
        return Location(
            base_url=f"http://{names.endpoint_service(name)}.{namespace}.svc:{md.spec.endpoint.port}",
            app_name=name,
            dashboard_url=dashboard_url(dashboard_template, name, namespace),
        )

    return locate


def secret_refs(md: ModelDeployment) -> list[tuple[str, str, str]]:
    """(field, Secret name, key) of every Secret the gateway reads for this model."""
    refs = []
    keys = md.spec.endpoint.api_keys_secret_ref
    if keys is not None:
        refs.append(("spec.endpoint.apiKeysSecretRef", keys.name, keys.key))
    provider = md.spec.overflow.api_key_secret_ref if md.spec.overflow else None
    if provider is not None:
        refs.append(("spec.overflow.apiKeySecretRef", provider.name, provider.key))
    return refs


def secret_problems(
    refs: Sequence[tuple[str, str, str]], keys_of: Mapping[str, set[str] | None]
) -> list[str]:
    """A missing Secret or key, named by field (pure; `keys_of` maps a Secret to its keys, None
    when it does not exist). Only names: a Secret's values are never read by the operator."""
    problems = []
    for field_path, name, key in refs:
        keys = keys_of.get(name)
        if keys is None:
            problems.append(f"{field_path}: Secret {name!r} does not exist")
        elif key not in keys:
            problems.append(f"{field_path}: Secret {name!r} has no key {key!r}")
    return problems


def _overflow_target(md: ModelDeployment, secret: SecretResolver) -> OverflowTarget | None:
    overflow = md.spec.overflow
    if overflow is None:
        return None
    ref = overflow.api_key_secret_ref
    return OverflowTarget(
        base_url=overflow.base_url,
        model=overflow.model,
        api_key=secret(ref.name, ref.key) if ref else None,
        when=tuple(overflow.when),
        max_queue_wait_s=overflow.max_queue_wait_seconds,
    )


def build_gateway_config(
    models: Sequence[tuple[ModelDeployment, ServingConfig]], locate: Locator, secret: SecretResolver
) -> GatewayConfig:
    """The gateway's routes for these ModelDeployments (pure; sorted by name, so stable), each
    with the ServingConfig its reconcile built (with its digest manifest, which only the
    reconcile reads).

    A hosted route is added for each distinct overflow model name that no local model uses,
    guarded by the keys of the first ModelDeployment (by name) that names it. Two
    ModelDeployments serving the same model name cannot share one endpoint: the first by name
    gets the route, the other stays reachable through its own Service only.
    """
    routes: list[LocalRoute] = []
    hosted: dict[str, HostedRoute] = {}
    for md, serving in sorted(models, key=lambda m: str(m[0].metadata.get("name"))):
        if any(r.name == serving.served_model_name for r in routes):
            continue
        place = locate(md)
        keys_ref = md.spec.endpoint.api_keys_secret_ref
        keys = secret(keys_ref.name, keys_ref.key) if keys_ref else None
        target = _overflow_target(md, secret)
        routes.append(
            LocalRoute(
                name=serving.served_model_name,
                base_url=place.base_url,
                app_name=place.app_name,
                dashboard_url=place.dashboard_url,
                slots_per_replica=serving.engine.max_num_seqs or VLLM_DEFAULT_MAX_NUM_SEQS,
                admitted_per_replica=serving.effective_max_ongoing_requests,
                max_queued_requests=serving.max_queued_requests,
                api_keys=keys,
                overflow=target,
                local_only=md.spec.privacy.local_only,
            )
        )
        if target is not None and target.model not in hosted:
            hosted[target.model] = HostedRoute(name=target.model, target=target, api_keys=keys)
    local_names = {r.name for r in routes}
    return GatewayConfig(
        routes=tuple(routes),
        hosted=tuple(h for name, h in sorted(hosted.items()) if name not in local_names),
    )


def _owner_references(mds: Sequence[ModelDeployment]) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": str(md.metadata["name"]),
            "uid": str(md.metadata["uid"]),
        }
        for md in sorted(mds, key=lambda m: str(m.metadata["name"]))
    ]


def _metadata(namespace: str, mds: Sequence[ModelDeployment]) -> dict[str, Any]:
    labels = names.labels(GATEWAY_NAME, GATEWAY_COMPONENT)
    labels.pop(names.NAME_LABEL)  # not one deployment's child: a namespace's
    return {
        "name": GATEWAY_NAME,
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": _owner_references(mds),
    }


def _selector() -> dict[str, str]:
    return {"app.kubernetes.io/name": "modeldeploy", names.COMPONENT_LABEL: GATEWAY_COMPONENT}


def build_gateway_configmap(
    namespace: str, mds: Sequence[ModelDeployment], config: GatewayConfig
) -> dict[str, Any]:
    return stamped(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata(namespace, mds),
            "data": {CONFIG_FILE: config.to_json()},
        }
    )


def referenced_secrets(config: GatewayConfig) -> list[str]:
    """Names of the Secrets the gateway reads, each once, sorted."""
    sources = [r.api_keys for r in config.routes] + [h.api_keys for h in config.hosted]
    sources += [r.overflow.api_key for r in config.routes if r.overflow is not None]
    sources += [h.target.api_key for h in config.hosted]
    prefix = SECRETS_DIR + "/"
    found = {
        s.file.removeprefix(prefix).split("/", 1)[0]
        for s in sources
        if s is not None and s.file is not None and s.file.startswith(prefix)
    }
    return sorted(found)


def build_gateway_deployment(
    namespace: str,
    mds: Sequence[ModelDeployment],
    config: GatewayConfig,
    image: str = DEFAULT_GATEWAY_IMAGE,
) -> dict[str, Any]:
    """The gateway's pod: the config and each referenced Secret mounted read-only.

    One replica: the overflow decision rests on the requests in flight to each model, and the
    status on the request counters, both of which one process sees whole (two would each see
    half). The config's hash in the pod template rolls the pod when a route changes (the
    gateway reads its config at start); a rotated Secret needs no roll, keys are read again.
    """
    secrets = referenced_secrets(config)
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": GATEWAY_NAME}},
        *(
            {"name": f"secret-{i}", "secret": {"secretName": s, "defaultMode": 0o440}}
            for i, s in enumerate(secrets)
        ),
    ]
    mounts = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        *(
            {"name": f"secret-{i}", "mountPath": f"{SECRETS_DIR}/{s}", "readOnly": True}
            for i, s in enumerate(secrets)
        ),
    ]
    labels = {**_metadata(namespace, mds)["labels"], **_selector()}
    container = {
        "name": "gateway",
        "image": image,
        "command": ["python", "-m", "modeldeploy_serving.gateway"],
        "args": [f"{CONFIG_DIR}/{CONFIG_FILE}", "--host", "0.0.0.0", "--port", str(GATEWAY_PORT)],
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
    }
    return stamped(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(namespace, mds),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": _selector()},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {CONFIG_HASH_ANNOTATION: canonical_hash(config.to_json())},
                    },
                    "spec": {
                        "automountServiceAccountToken": False,
                        # fsGroup: the kubelet makes Secret files root-owned; mode 0440 with
                        # this group is what lets uid 1000 read its keys, and nobody else.
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 1000,
                            "runAsGroup": 1000,
                            "fsGroup": 1000,
                        },
                        "containers": [container],
                        "volumes": volumes,
                    },
                },
            },
        }
    )


def build_gateway_service(namespace: str, mds: Sequence[ModelDeployment]) -> dict[str, Any]:
    """Service modeldeploy-gateway: the namespace's one OpenAI base URL."""
    return stamped(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(namespace, mds),
            "spec": {
                "type": "ClusterIP",
                "selector": _selector(),
                "ports": [
                    {
                        "name": "http",
                        "port": GATEWAY_PORT,
                        "targetPort": "http",
                        "protocol": "TCP",
                        "appProtocol": "http",
                    }
                ],
            },
        }
    )
