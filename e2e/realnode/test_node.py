"""The real node itself: a kubelet on containerd that runs this project's images, with Services,
cluster DNS and NetworkPolicies that really route and drop (kwok's nodes only pretend)."""

from __future__ import annotations

import textwrap

from cluster import binaries, node
from cluster.localcluster import LocalCluster
from kubernetes import client

from .workload import apply, run_pod

# A client that prints what it got, or the error, and never raises: the test reads the verdict.
# kube-proxy and the policy enforcer apply a change a moment after the API shows it (a Ready pod,
# a new policy), as on any cluster: the client tries until it sees the state it expects ("open":
# an answer; "denied": no answer, three times running) or its 60 s run out, and prints the last.
FETCH = textwrap.dedent(
    """
    import socket, sys, time, urllib.request
    url, expect = sys.argv[1], sys.argv[2]
    deadline, denied_in_a_row = time.monotonic() + 60, 0
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                verdict, denied_in_a_row = f"status {r.status} {r.read().decode().strip()}", 0
        except Exception as e:
            verdict, denied_in_a_row = f"error {type(e).__name__} {e}", denied_in_a_row + 1
        settled = verdict.startswith("status") if expect == "open" else denied_in_a_row == 3
        if settled or time.monotonic() > deadline:
            break
        time.sleep(1)
    print(verdict)
    try:
        socket.getaddrinfo("pypi.org", 443)
        print("outside-name resolved")
    except OSError:
        print("outside-name unresolved")
    """
)


def web_server(namespace: str, image: str) -> list[dict[str, object]]:
    labels = {"app": "web"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "labels": labels},
            "spec": {
                "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
                "containers": [
                    {
                        "name": "web",
                        "image": image,
                        "command": [
                            "sh",
                            "-c",
                            f"echo hello-from-{namespace} > /tmp/index.html "
                            "&& cd /tmp && exec python -m http.server 8080",
                        ],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    ]


def test_node_runs_the_pinned_kubelet_and_containerd(admin: client.ApiClient) -> None:
    [real] = client.CoreV1Api(admin).list_node(label_selector="=".join(node.NODE_LABEL)).items
    versions = binaries.read_versions()
    info = real.status.node_info
    assert info.kubelet_version == versions["KUBERNETES_VERSION"]
    assert info.container_runtime_version == "containerd://" + versions[
        "CONTAINERD_VERSION"
    ].removeprefix("v")
    assert {a.type: a.address for a in real.status.addresses}["InternalIP"] == node.HOST_IP
    ready = {c.type: c.status for c in real.status.conditions}["Ready"]
    assert ready == "True"


def test_service_dns_and_network_policy_between_namespaces(
    cluster: LocalCluster,
    admin: client.ApiClient,
    namespace: str,
    image_refs: dict[str, str],
) -> None:
    core = client.CoreV1Api(admin)
    server_ns = f"{namespace}-srv"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=server_ns)))
    try:
        apply(cluster, server_ns, *web_server(server_ns, image_refs["serving-cpu"]))
        cluster.kubectl("wait", "-n", server_ns, "pod/web", "--for=condition=Ready",
                        "--timeout=300s")  # fmt: skip
        url = f"http://web.{server_ns}.svc.{node.CLUSTER_DOMAIN}/index.html"
        fetch = ["python", "-c", FETCH, url]
        log = run_pod(cluster, core, namespace, "fetch-open", image_refs["serving-cpu"],
                      [*fetch, "open"])  # fmt: skip
        assert f"status 200 hello-from-{server_ns}" in log, log
        assert "outside-name unresolved" in log, log

        deny_all = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny-all"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        }
        apply(cluster, server_ns, deny_all)
        log = run_pod(cluster, core, namespace, "fetch-denied", image_refs["serving-cpu"],
                      [*fetch, "denied"])  # fmt: skip
        assert "status 200" not in log and "error" in log, log
    finally:
        core.delete_namespace(server_ns)
