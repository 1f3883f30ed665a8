"""The product as a cluster runs it: the chart's operator pods, a CPU ModelDeployment's Ray
head and worker pods from the serving image, the endpoint reached by the official `openai`
client from another namespace's pod, and the gateway's API keys, all on the real node.

One release and one model serve the module's tests in order: an engine start in a pod costs
minutes on two cores, so it is paid once.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cluster import binaries
from cluster.localcluster import LocalCluster, wait_until
from install.release import helm_uninstall
from kubernetes import client

from modeldeploy_operator.builders.gateway import GATEWAY_COMPONENT
from modeldeploy_operator.common import names

from .workload import (
    API_KEY,
    MODEL,
    RELEASE,
    RELEASE_NS,
    SERVED_NAME,
    apply,
    condition,
    install_release,
    model_volume,
    read_md,
    run_pod,
    tiny_model_deployment,
)

# Runs in a pod: the official client against the in-cluster endpoint; prints one JSON verdict.
OPENAI_CLIENT = textwrap.dedent(
    """
    import json, sys
    import openai
    base_url, model, key = sys.argv[1], sys.argv[2], sys.argv[3]
    c = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)
    out = {}
    try:
        out["models"] = [m.id for m in c.models.list()]
        msgs = [{"role": "user", "content": "Say hello"}]
        chat = c.chat.completions.create(model=model, messages=msgs, max_tokens=8, temperature=0)
        out["chat"] = chat.choices[0].message.content
        out["finish"] = chat.choices[0].finish_reason
        stream = c.chat.completions.create(
            model=model, messages=msgs, max_tokens=8, temperature=0, stream=True
        )
        out["stream"] = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    except openai.APIStatusError as e:
        out["status"] = e.status_code
        out["error"] = e.body
    print(json.dumps(out))
    """
)


@dataclass(frozen=True)
class Served:
    namespace: str
    endpoint: str  # http://NAME.NAMESPACE.svc:8000/v1


@pytest.fixture(scope="module")
def release(
    cluster: LocalCluster, image_refs: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The chart, installed with the images built here; yields the release's namespace."""
    install_release(cluster, image_refs, tmp_path_factory.mktemp("release"))
    yield RELEASE_NS
    helm_uninstall(cluster, RELEASE, RELEASE_NS)


@pytest.fixture(scope="module")
def served(
    cluster: LocalCluster,
    admin: client.ApiClient,
    release: str,
    image_refs: dict[str, str],
    tiny_model: Path,
) -> Iterator[Served]:
    """The tiny model, Ready on the node, with API keys (so the namespace gets a gateway)."""
    namespace = "node-model"
    core = client.CoreV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    keys = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "team-keys"},
        "stringData": {"keys": API_KEY},
    }
    md = tiny_model_deployment(
        image_refs["serving-cpu"], apiKeysSecretRef={"name": "team-keys", "key": "keys"}
    )
    apply(cluster, namespace, *model_volume(namespace, tiny_model), keys, md)

    def ready() -> bool:
        return condition(read_md(admin, namespace), "Ready").get("status") == "True"

    try:
        wait_until(ready, timeout=900, interval=2, what=f"ModelDeployment {MODEL} Ready")
    except TimeoutError:
        raise AssertionError(f"not Ready: {json.dumps(read_md(admin, namespace).get('status'))}"
                             f"\n{pods_summary(core, namespace)}") from None  # fmt: skip
    yield Served(namespace, f"http://{MODEL}.{namespace}.svc:8000/v1")
    core.delete_namespace(namespace)


def pods_summary(core: client.CoreV1Api, namespace: str) -> str:
    lines = []
    for pod in core.list_namespaced_pod(namespace).items:
        states = [(s.name, s.ready, s.restart_count, str(s.state)) for s in
                  pod.status.container_statuses or []]  # fmt: skip
        lines.append(f"{pod.metadata.name} {pod.status.phase} {states}")
    return "\n".join(lines)


def test_operator_pods_run_and_both_join_the_peering(admin: client.ApiClient, release: str) -> None:
    core = client.CoreV1Api(admin)
    pods = core.list_namespaced_pod(release, label_selector="app.kubernetes.io/name=modeldeploy")
    assert len(pods.items) == 2
    assert all(p.status.phase == "Running" for p in pods.items), pods_summary(core, release)
    peering = client.CustomObjectsApi(admin).get_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings", "modeldeploy"
    )
    # Both replicas registered in kopf's peering (which one works and which pauses is the
    # kwok tier's peering test).
    assert len(peering.get("status", {})) == 2, peering.get("status")


def test_model_pods_run_the_serving_image(
    admin: client.ApiClient, served: Served, image_refs: dict[str, str]
) -> None:
    core = client.CoreV1Api(admin)
    pods = core.list_namespaced_pod(served.namespace).items
    ray_pods = [p for p in pods if p.metadata.name.startswith(f"{MODEL}-")]
    assert {p.metadata.name for p in ray_pods} >= {f"{MODEL}-head", f"{MODEL}-worker-0"}
    for pod in ray_pods:
        assert pod.status.phase == "Running", pods_summary(core, served.namespace)
        assert pod.spec.containers[0].image == image_refs["serving-cpu"]


def _openai_verdict(
    cluster: LocalCluster, admin: client.ApiClient, namespace: str, image: str, pod: str,
    base_url: str, key: str,
) -> dict[str, Any]:  # fmt: skip
    """Run OPENAI_CLIENT in a pod of `namespace` against `base_url`; its JSON verdict."""
    command = ["python", "-c", OPENAI_CLIENT, base_url, SERVED_NAME, key]
    core = client.CoreV1Api(admin)
    out: dict[str, Any] = json.loads(
        run_pod(cluster, core, namespace, pod, image, command).strip().splitlines()[-1]
    )
    return out


def test_openai_client_in_another_namespace(
    cluster: LocalCluster,
    admin: client.ApiClient,
    served: Served,
    namespace: str,
    image_refs: dict[str, str],
) -> None:
    image = image_refs["serving-cpu"]
    out = _openai_verdict(cluster, admin, namespace, image, "openai", served.endpoint, "unused")
    assert out["models"] == [SERVED_NAME], out
    assert out["chat"] and out["finish"] in ("length", "stop"), out
    # Greedy decoding: the stream carries the same text as the whole answer.
    assert out["stream"] == out["chat"], out


def test_gateway_checks_keys_from_its_secret(
    cluster: LocalCluster,
    admin: client.ApiClient,
    served: Served,
    namespace: str,
    image_refs: dict[str, str],
) -> None:
    gateway = f"http://modeldeploy-gateway.{served.namespace}.svc:8000/v1"
    cluster.kubectl("rollout", "status", "-n", served.namespace, "deployment/modeldeploy-gateway",
                    "--timeout=300s")  # fmt: skip
    image = image_refs["serving-cpu"]
    out = _openai_verdict(cluster, admin, namespace, image, "keyed", gateway, API_KEY)
    assert out.get("chat"), out
    out = _openai_verdict(cluster, admin, namespace, image, "unkeyed", gateway, "sk-wrong")
    assert out.get("status") == 401, out


def _as_new_pod(pod: client.V1Pod, api: client.ApiClient) -> dict[str, Any]:
    """The pod's spec as a fresh object (what its creator sent), for a server-side dry run."""
    spec = api.sanitize_for_serialization(pod.spec)
    for key in ("nodeName", "serviceAccountName", "serviceAccount"):
        spec.pop(key, None)
    # The admission-added token volume: PSA judges what the creator sent, not what was injected.
    spec["volumes"] = [v for v in spec.get("volumes", []) if "projected" not in v]
    for container in spec["containers"]:
        mounts = container.get("volumeMounts", [])
        container["volumeMounts"] = [m for m in mounts if "serviceaccount" not in m["mountPath"]]
    name = pod.metadata.name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_pod_security_restricted_report(
    cluster: LocalCluster, admin: client.ApiClient, release: str, served: Served, tmp_path: Path
) -> None:
    """Which of the pods the chart and the operator create a namespace enforcing the
    `restricted` Pod Security Standard admits. This records the answer (the security work must
    turn every line into "admitted"); it fails only if the check itself does not enforce."""
    core = client.CoreV1Api(admin)
    namespace = "psa-restricted"
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels=labels))
    )
    try:
        kinds = {
            "operator": core.list_namespaced_pod(release).items[0],
            "ray-head": core.read_namespaced_pod(f"{MODEL}-head", served.namespace),
            "ray-worker": core.read_namespaced_pod(f"{MODEL}-worker-0", served.namespace),
            "gateway": core.list_namespaced_pod(
                served.namespace, label_selector=f"{names.COMPONENT_LABEL}={GATEWAY_COMPONENT}"
            ).items[0],
        }
        report: dict[str, str] = {}
        for kind, pod in kinds.items():
            done = cluster.kubectl(
                "create", "--dry-run=server", "-n", namespace, "-f", "-",
                input=json.dumps(_as_new_pod(pod, admin)), check=False,
            )  # fmt: skip
            report[kind] = "admitted" if done.returncode == 0 else done.stderr.strip()
        privileged = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "privileged"},
            "spec": {
                "containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]
            },
        }
        refused = cluster.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-",
                                  input=json.dumps(privileged), check=False)  # fmt: skip
        (tmp_path / "pod-security.json").write_text(json.dumps(report, indent=2))
        print("restricted Pod Security Standard:\n" + json.dumps(report, indent=2))
        assert refused.returncode != 0 and "restricted" in refused.stderr, refused.stderr
        assert set(report) == set(kinds)
    finally:
        core.delete_namespace(namespace)


def test_deleting_the_model_removes_its_pods_and_containers(
    cluster: LocalCluster, admin: client.ApiClient, served: Served
) -> None:
    assert cluster.node is not None
    cluster.kubectl("delete", "-n", served.namespace, "modeldeployment", MODEL, "--wait=true")
    core = client.CoreV1Api(admin)

    def no_ray_pods() -> bool:
        pods = core.list_namespaced_pod(served.namespace).items
        return not [p for p in pods if p.metadata.name.startswith(f"{MODEL}-")]

    wait_until(no_ray_pods, timeout=180, what="the model's pods to be garbage-collected")

    def no_containers() -> bool:
        done = subprocess.run(
            [str(binaries.binary("crictl")), *cluster.node.crictl_flags(), "ps", "-a", "-o",
             "json", "--label", f"io.kubernetes.pod.namespace={served.namespace}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        containers = json.loads(done.stdout)["containers"]
        return not [c for c in containers if c["labels"]["io.kubernetes.pod.name"].startswith(
            f"{MODEL}-")]  # fmt: skip

    wait_until(no_containers, timeout=120, what="the model's containers gone from containerd")
