"""Pure builders of the Ray head pod and the GPU (or CPU) worker pods of a ModelDeployment.

Pods rather than a Deployment or StatefulSet: the operator picks which worker to remove on scale
down (an idle one), and worker names carry a stable index, so re-running a half-finished reconcile
after a crash creates nothing twice.
"""

from __future__ import annotations

import copy
from typing import Any

from modeldeploy_serving.ingress import DEFAULT_INGRESS, ingress_env
from modeldeploy_serving.serve_env import serve_env

from ..common import names
from ..common.hashing import stamped
from ..common.quantities import whole_cpus
from .owner import Owner
from .serving_config import PVC_MOUNT_ROOT

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
MODEL_CACHE_PATH = "/model-cache"

_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}
_POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000}


def _probes(health: dict[str, Any]) -> dict[str, Any]:
    """Readiness and liveness on the same check, head and worker alike: ready within seconds,
    restarted only after a minute of failures (an engine under load answers slowly)."""
    return {
        "readinessProbe": {**health, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {
            **health,
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
    }


def _env(owner: Owner) -> list[dict[str, Any]]:
    # The ingress the overhead benchmark picked (HAProxy in front of the replicas' own HTTP
    # servers), short metric pushes so the queue-depth policy reacts in about a second, and
    # Serve's own loops woken less often. Every Ray process reads these at start from its node's
    # environment, so head and workers carry the same set.
    ray_env = ingress_env(DEFAULT_INGRESS) | serve_env()
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in ray_env.items()]
    env.append({"name": "HF_HOME", "value": f"{MODEL_CACHE_PATH}/huggingface"})
    ref = owner.spec.model.token_secret_ref
    if ref is not None:
        # One variable name that the Hub, S3 and GCS loaders of the serving image all read.
        secret = {"secretKeyRef": {"name": ref.name, "key": ref.key}}
        env.append({"name": "HF_TOKEN", "valueFrom": secret})
    return env


def model_cache_volume(owner: Owner) -> dict[str, Any]:
    """The volume at MODEL_CACHE_PATH, where replicas download hub models (HF_HOME) under a
    lock: the spec's PersistentVolumeClaim or node directory, shared by the replicas using it,
    else an emptyDir of the pod's own."""
    cache = owner.spec.model.cache
    volume: dict[str, Any] = {"name": "model-cache"}
    if cache is not None and cache.persistent_volume_claim is not None:
        volume["persistentVolumeClaim"] = {"claimName": cache.persistent_volume_claim}
    elif cache is not None and cache.host_path is not None:
        volume["hostPath"] = {"path": cache.host_path, "type": "DirectoryOrCreate"}
    else:
        volume["emptyDir"] = {}
    return volume


def _metadata(owner: Owner, pod_name: str, component: str, proxy: bool) -> dict[str, Any]:
    labels = names.labels(owner.name, component)
    if proxy:
        labels[names.PROXY_LABEL] = "true"
    return {
        "name": pod_name,
        "namespace": owner.namespace,
        "labels": labels,
        "ownerReferences": [owner.reference()],
    }


def build_head_pod(owner: Owner) -> dict[str, Any]:
    """The Ray head: GCS, dashboard (Serve's REST API), Serve controller and a proxy; no GPU."""
    spec = owner.spec
    command = [
        "ray",
        "start",
        "--head",
        f"--port={names.GCS_PORT}",
        "--dashboard-host=0.0.0.0",
        f"--dashboard-port={names.DASHBOARD_PORT}",
        f"--ray-client-server-port={names.CLIENT_PORT}",
        f"--metrics-export-port={names.METRICS_PORT}",
        # No CPUs or GPUs for Ray tasks: replicas must land on workers, never on the head.
        "--num-cpus=0",
        "--num-gpus=0",
        "--block",
    ]
    health = {"httpGet": {"path": "/api/gcs_healthz", "port": names.DASHBOARD_PORT}}
    resources = {"cpu": spec.ray.head_resources.cpu, "memory": spec.ray.head_resources.memory}
    container = {
        "name": "ray-head",
        "image": spec.ray.image,
        "command": command,
        "env": _env(owner),
        "ports": [
            {"name": "gcs", "containerPort": names.GCS_PORT},
            {"name": "dashboard", "containerPort": names.DASHBOARD_PORT},
            {"name": "client", "containerPort": names.CLIENT_PORT},
            {"name": "serve", "containerPort": names.SERVE_PORT},
            {"name": "metrics", "containerPort": names.METRICS_PORT},
        ],
        "resources": {"requests": resources, "limits": {"memory": resources["memory"]}},
        **_probes(health),
        "securityContext": _CONTAINER_SECURITY,
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(owner, names.head_pod(owner.name), names.HEAD, proxy=True),
        "spec": {
            "containers": [container],
            "securityContext": _POD_SECURITY,
            "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
            "restartPolicy": "Always",
        },
    }
    return stamped(pod)


def _worker_affinity(owner: Owner) -> dict[str, Any] | None:
    """The spec's affinity, with the GPU product added to every required node term (AND)."""
    resources = owner.spec.resources
    affinity = copy.deepcopy(resources.affinity) if resources.affinity else None
    if resources.gpu_product is None or resources.accelerator == "cpu":
        return affinity
    wanted = {"key": GPU_PRODUCT_LABEL, "operator": "In", "values": [resources.gpu_product]}
    affinity = affinity or {}
    required = affinity.setdefault("nodeAffinity", {}).setdefault(
        "requiredDuringSchedulingIgnoredDuringExecution", {}
    )
    terms = required.setdefault("nodeSelectorTerms", [])
    if not terms:
        terms.append({})
    for term in terms:
        term.setdefault("matchExpressions", []).append(wanted)
    return affinity


def _worker_tolerations(owner: Owner) -> list[dict[str, Any]]:
    tolerations = [t.model_dump(exclude_none=True) for t in owner.spec.resources.tolerations]
    if owner.spec.resources.accelerator != "cpu":
        # GPU nodes are commonly tainted so that only GPU work lands there.
        gpu_taint = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        if gpu_taint not in tolerations:
            tolerations.append(gpu_taint)
    return tolerations


def build_worker_pod(owner: Owner, index: int) -> dict[str, Any]:
    """Worker `index`: a Ray node with gpusPerWorker GPUs that hosts engine replicas."""
    spec = owner.spec
    gpus = spec.gpus_per_worker()
    requests: dict[str, Any] = {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    limits: dict[str, Any] = {"memory": spec.resources.memory}
    if gpus:
        # Quantities are strings in the API (the client validates that).
        requests[spec.resources.accelerator] = str(gpus)
        limits[spec.resources.accelerator] = str(gpus)
    command = [
        "ray",
        "start",
        f"--address={names.head_address(owner.name, owner.namespace)}:{names.GCS_PORT}",
        f"--num-cpus={whole_cpus(spec.resources.cpu)}",
        f"--num-gpus={gpus}",
        f"--metrics-export-port={names.METRICS_PORT}",
        "--block",
    ]
    health = {"httpGet": {"path": "/api/local_raylet_healthz", "port": 52365}}
    container: dict[str, Any] = {
        "name": "ray-worker",
        "image": spec.ray.image,
        "command": command,
        "env": _env(owner),
        "ports": [
            {"name": "serve", "containerPort": names.SERVE_PORT},
            {"name": "metrics", "containerPort": names.METRICS_PORT},
        ],
        "resources": {"requests": requests, "limits": limits},
        **_probes(health),
        "securityContext": _CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "model-cache", "mountPath": MODEL_CACHE_PATH},
        ],
    }
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        model_cache_volume(owner),
    ]
    # A pvc:// source's claim, mounted where serving_config points --model.
    claim = spec.model.parsed_source().claim
    if claim:
        volumes.append(
            {
                "name": "model-source",
                "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
            }
        )
        container["volumeMounts"].append(
            {"name": "model-source", "mountPath": f"{PVC_MOUNT_ROOT}/{claim}", "readOnly": True}
        )
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "securityContext": _POD_SECURITY,
        "volumes": volumes,
        "restartPolicy": "Always",
        "tolerations": _worker_tolerations(owner),
    }
    if spec.resources.node_selector:
        pod_spec["nodeSelector"] = dict(spec.resources.node_selector)
    affinity = _worker_affinity(owner)
    if affinity:
        pod_spec["affinity"] = affinity
    template = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(owner, "", names.WORKER, proxy=True),
        "spec": pod_spec,
    }
    # Hash the template before naming it: every worker of one spec carries the same hash.
    pod = stamped(template)
    pod["metadata"]["name"] = names.worker_pod(owner.name, index)
    pod["metadata"]["annotations"][names.WORKER_INDEX_ANNOTATION] = str(index)
    return pod
