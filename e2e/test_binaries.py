"""The build of the control plane's binaries: go.mod derivation, failures that say what failed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cluster import binaries
from cluster.binaries import COMPONENTS, BuildError, read_versions, throwaway_gomod

# The parts of a served go.mod that matter, as `go mod edit -json` prints them.
UPSTREAM = {
    "Go": "1.26.0",
    "GoDebug": [{"Key": "default", "Value": "go1.26"}],
    "Require": [{"Path": "k8s.io/api", "Version": "v0.0.0"}, {"Path": "example.com/x"}],
    "Replace": [
        {"Old": {"Path": "k8s.io/api"}, "New": {"Path": "./staging/src/k8s.io/api"}},
        {"Old": {"Path": "k8s.io/unused"}, "New": {"Path": "./staging/src/k8s.io/unused"}},
        {"Old": {"Path": "example.com/x"}, "New": {"Path": "example.com/y", "Version": "v1.2.3"}},
    ],
}


def test_versions_file_pins_every_component() -> None:
    versions = read_versions()
    for component in COMPONENTS.values():
        assert versions[component.version_key].startswith("v"), component.name


def test_throwaway_gomod_replaces_local_folders_with_published_versions() -> None:
    text = throwaway_gomod(COMPONENTS["kubernetes"], "v1.36.3", UPSTREAM)
    lines = text.splitlines()
    assert "go 1.26.0" in lines
    assert "godebug default=go1.26" in lines
    assert "require k8s.io/kubernetes v1.36.3" in lines
    # Staging modules are published as v0.<minor>.<patch>.
    assert "replace k8s.io/api => k8s.io/api v0.36.3" in lines
    assert "replace example.com/x => example.com/y v1.2.3" in lines
    assert not any("k8s.io/unused" in line for line in lines)  # not required: left out


def test_etcd_siblings_keep_the_release_version() -> None:
    upstream = {
        "Go": "1.26.0",
        "Require": [{"Path": "go.etcd.io/etcd/api/v3", "Version": "v3.6.16"}],
        "Replace": [{"Old": {"Path": "go.etcd.io/etcd/api/v3"}, "New": {"Path": "../api"}}],
    }
    text = throwaway_gomod(COMPONENTS["etcd"], "v3.6.16", upstream)
    assert "replace go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.6.16" in text


def test_cached_binaries_report_their_version() -> None:
    out = subprocess.run(
        [str(binaries.binary("kube-apiserver")), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"Kubernetes {read_versions()['KUBERNETES_VERSION']}"


def test_missing_go_fails_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BuildError, match=r"go\.etcd\.io/etcd/server/v3@v3\.6\.16.*not on PATH"):
        binaries.ensure("etcd", {"ETCD_VERSION": "v3.6.16"})


def test_failed_build_names_module_and_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path))
    with pytest.raises(BuildError, match=r"helm\.sh/helm/v3@v3\.0\.99-missing") as failed:
        binaries.ensure("helm", {"HELM_VERSION": "v3.0.99-missing"})
    assert "full log:" in str(failed.value)
    assert not (tmp_path / "bin" / "helm-v3.0.99-missing").exists()
