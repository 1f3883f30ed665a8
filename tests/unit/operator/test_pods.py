"""Pure builders of the head and worker pods."""

from __future__ import annotations

from typing import Any

from modeldeploy_operator.builders.owner import Owner
from modeldeploy_operator.builders.pods import build_head_pod, build_worker_pod
from modeldeploy_operator.common import names
from modeldeploy_operator.common.hashing import hash_of
from tests.operator_factories import make_owner


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    [container] = pod["spec"]["containers"]
    return dict(container)


def test_head_runs_ray_head_without_gpus(owner: Owner) -> None:
    pod = build_head_pod(owner)
    container = _container(pod)
    assert pod["metadata"]["name"] == "llm-head"
    assert container["command"][:3] == ["ray", "start", "--head"]
    assert "--num-gpus=0" in container["command"] and "--num-cpus=0" in container["command"]
    assert "nvidia.com/gpu" not in container["resources"]["requests"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "gcs": 6379,
        "dashboard": 8265,
        "client": 10001,
        "serve": 8000,
        "metrics": 8080,
    }
    assert container["readinessProbe"]["httpGet"]["port"] == 8265
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/gcs_healthz"


def test_children_are_owned_and_labelled(owner: Owner) -> None:
    for pod in (build_head_pod(owner), build_worker_pod(owner, 0)):
        [ref] = pod["metadata"]["ownerReferences"]
        assert ref["uid"] == "uid-1" and ref["controller"] is True
        assert ref["kind"] == "ModelDeployment"
        labels = pod["metadata"]["labels"]
        assert labels["modeldeploy.dev/name"] == "llm"
        assert labels["app.kubernetes.io/instance"] == "llm"
        assert labels["app.kubernetes.io/managed-by"] == "modeldeploy"
        assert labels[names.PROXY_LABEL] == "true"
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert _container(pod)["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_worker_requests_gpus_and_joins_head() -> None:
    owner = make_owner({"engine": {"tensorParallelSize": 2}, "resources": {"gpusPerWorker": 4}})
    pod = build_worker_pod(owner, 3)
    container = _container(pod)
    assert pod["metadata"]["name"] == "llm-worker-3"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "4"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert "--address=llm-head.team.svc:6379" in container["command"]
    assert "--num-gpus=4" in container["command"]
    assert "--num-cpus=8" in container["command"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["dshm"] == "/dev/shm" and mounts["model-cache"] == "/model-cache"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory"}


def test_gpu_product_is_added_to_every_required_term() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                ]
            }
        },
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []},
    }
    owner = make_owner({"resources": {"gpuProduct": "NVIDIA-H100-80GB-HBM3", "affinity": affinity}})
    built = build_worker_pod(owner, 0)["spec"]["affinity"]
    terms = built["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    product = {
        "key": "nvidia.com/gpu.product",
        "operator": "In",
        "values": ["NVIDIA-H100-80GB-HBM3"],
    }
    assert [t["matchExpressions"][-1] for t in terms] == [product, product]
    assert terms[0]["matchExpressions"][0]["values"] == ["a"]
    assert "podAntiAffinity" in built
    # The spec object itself is left untouched.
    assert (
        len(
            affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
                "nodeSelectorTerms"
            ][0]["matchExpressions"]
        )
        == 1
    )


def test_gpu_product_without_spec_affinity() -> None:
    owner = make_owner({"resources": {"gpuProduct": "NVIDIA-L4"}})
    affinity = build_worker_pod(owner, 0)["spec"]["affinity"]
    [term] = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term["matchExpressions"][0]["values"] == ["NVIDIA-L4"]


def test_node_selector_tolerations_and_token() -> None:
    owner = make_owner(
        {
            "model": {"tokenSecretRef": {"name": "hf", "key": "tok"}},
            "resources": {
                "nodeSelector": {"pool": "gpu"},
                "tolerations": [
                    {
                        "key": "dedicated",
                        "operator": "Equal",
                        "value": "llm",
                        "effect": "NoSchedule",
                    }
                ],
            },
        }
    )
    pod = build_worker_pod(owner, 0)
    assert pod["spec"]["nodeSelector"] == {"pool": "gpu"}
    tolerations = pod["spec"]["tolerations"]
    assert {
        "key": "dedicated",
        "operator": "Equal",
        "value": "llm",
        "effect": "NoSchedule",
    } in tolerations
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    env = {e["name"]: e for e in _container(pod)["env"]}
    assert env["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf", "key": "tok"}}
    assert "value" not in env["HF_TOKEN"]
    assert env["RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S"]["value"] == "0.5"


def test_cpu_workers_request_no_gpu_and_no_gpu_toleration() -> None:
    owner = make_owner({"resources": {"accelerator": "cpu", "cpu": "4", "memory": "8Gi"}})
    pod = build_worker_pod(owner, 0)
    container = _container(pod)
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "8Gi"}
    assert "--num-gpus=0" in container["command"]
    assert pod["spec"]["tolerations"] == []
    assert "affinity" not in pod["spec"]


def test_pvc_source_is_mounted_read_only() -> None:
    owner = make_owner({"model": {"source": "pvc://weights/llama/8b"}})
    pod = build_worker_pod(owner, 0)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["model-source"]["persistentVolumeClaim"] == {
        "claimName": "weights",
        "readOnly": True,
    }
    mounts = {m["name"]: m for m in _container(pod)["volumeMounts"]}
    assert mounts["model-source"]["mountPath"] == "/models/weights"


def test_worker_hash_ignores_index_and_tracks_spec(owner: Owner) -> None:
    assert hash_of(build_worker_pod(owner, 0)) == hash_of(build_worker_pod(owner, 7))
    other = make_owner({"resources": {"memory": "32Gi"}})
    assert hash_of(build_worker_pod(owner, 0)) != hash_of(build_worker_pod(other, 0))
    scaled = make_owner({"scaling": {"maxReplicas": 9}})
    assert hash_of(build_worker_pod(owner, 0)) == hash_of(build_worker_pod(scaled, 0))
    assert hash_of(build_head_pod(owner)) == hash_of(build_head_pod(scaled))


def test_builders_are_deterministic(owner: Owner) -> None:
    assert build_head_pod(owner) == build_head_pod(owner)
    assert build_worker_pod(owner, 1) == build_worker_pod(owner, 1)


def _cache_volume(pod: dict[str, Any]) -> dict[str, Any]:
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == "model-cache"]
    mount = next(
        m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == "model-cache"
    )
    assert mount["mountPath"] == "/model-cache"
    return dict(volume)


def test_model_cache_volume_from_the_spec() -> None:
    default = _cache_volume(build_worker_pod(make_owner(), 0))
    assert default == {"name": "model-cache", "emptyDir": {}}
    claim = make_owner({"model": {"cache": {"persistentVolumeClaim": "models"}}})
    assert _cache_volume(build_worker_pod(claim, 0)) == {
        "name": "model-cache",
        "persistentVolumeClaim": {"claimName": "models"},
    }
    node = make_owner({"model": {"cache": {"hostPath": "/var/lib/modeldeploy/models"}}})
    assert _cache_volume(build_worker_pod(node, 0)) == {
        "name": "model-cache",
        "hostPath": {"path": "/var/lib/modeldeploy/models", "type": "DirectoryOrCreate"},
    }
    env = {
        e["name"]: e.get("value") for e in build_worker_pod(node, 0)["spec"]["containers"][0]["env"]
    }
    assert env["HF_HOME"] == "/model-cache/huggingface"


def test_head_and_workers_share_the_ray_serve_environment() -> None:
    owner = make_owner({})

    def ray_env(pod: dict[str, Any]) -> dict[str, str]:
        return {
            e["name"]: e["value"] for e in _container(pod)["env"] if e["name"].startswith("RAY_")
        }

    head, worker = ray_env(build_head_pod(owner)), ray_env(build_worker_pod(owner, 0))
    assert head == worker
    assert head["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    # The serving image's launcher, which answers HAProxy's own errors as OpenAI error objects.
    assert head["RAY_SERVE_HAPROXY_BINARY_PATH"] == "/opt/modeldeploy/bin/modeldeploy-haproxy"
    assert head["RAY_SERVE_CONTROL_LOOP_INTERVAL_S"] == "0.5"
