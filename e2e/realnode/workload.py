"""What the real-node tier and the cold-start benchmark run on the node: the tiny model as a
CPU ModelDeployment reading its weights from a hostPath PersistentVolume, and small helpers to
apply objects, run a pod to completion and read a ModelDeployment's conditions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from cluster.localcluster import LocalCluster, wait_until
from install.release import helm_install
from kubernetes import client

from modeldeploy_serving.tiny_model import make_tiny_model

TINY_MODEL_DIR = Path("/tmp/modeldeploy/node-models/tiny-llama")
RELEASE, RELEASE_NS = "modeldeploy", "modeldeploy-system"
MODEL = "tiny"
SERVED_NAME = "tiny-llama"
API_KEY = "sk-node-test-0123456789"
# The tiny model on the CPU engine, sized for a 2-core node shared with the operator and head.
TINY_ENGINE = {
    "dtype": "float32",
    "maxModelLen": 256,
    "maxNumSeqs": 8,
    # On the CPU engine: the share of the pod's memory limit for vLLM, weights and KV cache.
    "gpuMemoryUtilization": 0.3,
    "extraArgs": ["--enforce-eager"],
}


def tiny_model() -> Path:
    """The local run's tiny model on the node's disk; pods read it through a hostPath
    PersistentVolume, readable by any uid (the serving image runs as 1000)."""
    path = make_tiny_model(TINY_MODEL_DIR)
    for entry in [path, *path.rglob("*")]:
        entry.chmod(0o755 if entry.is_dir() else 0o644)
    return path


def install_release(cluster: LocalCluster, image_refs: dict[str, str], scratch: Path) -> None:
    """The chart, with the operator image built here; the namespaces' gateways run the
    serving image."""
    repository, tag = image_refs["operator"].rsplit(":", 1)
    values = {
        "image": {"repository": repository, "tag": tag},
        "operator": {"extraArgs": [f"--gateway-image={image_refs['serving-cpu']}"]},
    }
    path = scratch / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    helm_install(cluster, RELEASE, RELEASE_NS, "-f", str(path))


def apply(cluster: LocalCluster, namespace: str, *objects: dict[str, Any]) -> None:
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)


def model_volume(namespace: str, model: Path) -> list[dict[str, Any]]:
    """A PersistentVolume on the node's directory of `model` and a claim bound to it by name:
    the model reaches the pods as `pvc://<claim>/<dir>`, the way a user's shared volume would."""
    pv_name = f"{namespace}-models"
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadOnlyMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(model.parent), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": "models"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "models", "namespace": namespace},
            "spec": {
                "accessModes": ["ReadOnlyMany"],
                "storageClassName": "",
                "volumeName": pv_name,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]


def tiny_model_deployment(serving_image: str, **endpoint: Any) -> dict[str, Any]:
    """One replica of the tiny model on the CPU engine, its image the serving image built here."""
    spec: dict[str, Any] = {
        "model": {"source": f"pvc://models/{SERVED_NAME}", "servedModelName": SERVED_NAME},
        "engine": TINY_ENGINE,
        "resources": {"accelerator": "cpu", "cpu": "500m", "memory": "8Gi"},
        "ray": {"image": serving_image, "headResources": {"cpu": "250m", "memory": "3Gi"}},
        "scaling": {"minReplicas": 1, "maxReplicas": 1},
    }
    if endpoint:
        spec["endpoint"] = endpoint
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": MODEL},
        "spec": spec,
    }


def condition(md: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in md.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def read_md(admin: client.ApiClient, namespace: str) -> dict[str, Any]:
    custom = client.CustomObjectsApi(admin)
    md: dict[str, Any] = custom.get_namespaced_custom_object(
        "modeldeploy.dev", "v1alpha1", namespace, "modeldeployments", MODEL
    )
    return md


def run_pod(
    cluster: LocalCluster,
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    image: str,
    command: list[str],
    timeout: float = 300,
) -> str:
    """Run one pod to completion on the node and return its log; fails with the log when the
    container does not succeed."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": image, "command": command}],
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
        },
    }
    apply(cluster, namespace, pod)

    def finished() -> bool:
        phase = core.read_namespaced_pod(name, namespace).status.phase
        return phase in ("Succeeded", "Failed")

    wait_until(finished, timeout=timeout, what=f"pod {namespace}/{name} to finish")
    log: str = core.read_namespaced_pod_log(name, namespace)
    phase = core.read_namespaced_pod(name, namespace).status.phase
    assert phase == "Succeeded", f"pod {name} {phase}:\n{log}"
    return log
