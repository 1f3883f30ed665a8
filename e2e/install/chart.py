"""The install artifacts under test (chart, deploy/, Dockerfiles) and helm rendering of the chart.

Rendering uses the helm binary the control plane's build caches (e2e/cluster/binaries.py), so the
chart tests need no running cluster; install tests run the same binary through `cluster.helm`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from cluster import binaries

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modeldeploy"
RENDER_DEPLOY = ROOT / "charts" / "render-deploy.sh"
DEPLOY_MANIFEST = ROOT / "deploy" / "modeldeploy.yaml"
DOCKERFILES = {
    "operator": ROOT / "docker" / "operator.Dockerfile",
    "serving": ROOT / "docker" / "serving.Dockerfile",
}
PEERING_NAME = "modeldeploy"  # operator_main.PEERING_NAME; the chart creates this object
RELEASE_LABEL = "app.kubernetes.io/instance"

# Value sets covering each branch of the templates: all namespaces, listed namespaces, the
# optional objects on, one replica (no PDB).
VALUE_MODES: dict[str, list[str]] = {
    "all-namespaces": [],
    "listed-namespaces": ["--set", "watchNamespaces={team-a,team-b}"],
    "optional-objects": [
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "grafana.dashboard.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
    ],
    "one-replica": ["--set", "replicaCount=1"],
}


def helm_binary() -> Path:
    return binaries.binary("helm")


def kube_version() -> str:
    return binaries.read_versions()["KUBERNETES_VERSION"]


def helm_template(
    *args: str, release: str = "modeldeploy", namespace: str = "modeldeploy-system"
) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart; the caller checks the exit status."""
    command = [
        str(helm_binary()),
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        kube_version(),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def render(*args: str, release: str = "modeldeploy", namespace: str = "modeldeploy-system") -> str:
    done = helm_template(*args, release=release, namespace=namespace)
    if done.returncode != 0:
        raise AssertionError(f"helm template failed: {done.stderr}")
    return done.stdout


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def of_kind(docs: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] in kinds]
