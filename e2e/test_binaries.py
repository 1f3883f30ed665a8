"""The build of the control plane's binaries: go.mod derivation, failures that say what failed."""

from __future__ import annotations

import struct
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


# How each node binary reports its version: binary, arguments, the expected line (formatted with
# versions.env; a bare version has its "v" stripped as `{key_}`).
NODE_VERSION_LINES = [
    ("kubelet", ["--version"], "Kubernetes {KUBERNETES_VERSION}"),
    ("kube-proxy", ["--version"], "Kubernetes {KUBERNETES_VERSION}"),
    (
        "containerd",
        ["--version"],
        "containerd github.com/containerd/containerd/v2 {CONTAINERD_VERSION}",
    ),
    ("ctr", ["--version"], "ctr github.com/containerd/containerd/v2 {CONTAINERD_VERSION}"),
    ("containerd-shim-runc-v2", ["-v"], "Version: {CONTAINERD_VERSION}"),
    ("runc", ["--version"], "runc version {RUNC_VERSION_}"),
    ("bridge", [], "CNI bridge plugin {CNI_PLUGINS_VERSION}"),
    ("host-local", [], "CNI host-local plugin {CNI_PLUGINS_VERSION}"),
    ("loopback", [], "CNI loopback plugin {CNI_PLUGINS_VERSION}"),
    ("portmap", [], "CNI portmap plugin {CNI_PLUGINS_VERSION}"),
    ("crictl", ["--version"], "crictl version {CRI_TOOLS_VERSION_}"),
    ("crane", ["version"], "{GO_CONTAINERREGISTRY_VERSION}"),
    ("coredns", ["-version"], "CoreDNS-{COREDNS_VERSION_}"),
]


def _expected(template: str) -> str:
    versions = read_versions()
    bare = {f"{k}_": v.removeprefix("v") for k, v in versions.items()}
    return template.format(**versions, **bare)


@pytest.mark.parametrize(
    ("name", "args", "line"), NODE_VERSION_LINES, ids=[n for n, *_ in NODE_VERSION_LINES]
)
def test_node_binaries_report_their_version(name: str, args: list[str], line: str) -> None:
    # Without CNI_COMMAND in its environment, a CNI plugin prints its "about" text.
    proc = subprocess.run(
        [str(binaries.binary(name)), *args], capture_output=True, text=True, check=True
    )
    lines = [" ".join(x.split()) for x in (proc.stdout + proc.stderr).splitlines()]
    assert _expected(line) in lines


@pytest.mark.parametrize("component", list(COMPONENTS), ids=str)
def test_binaries_embed_the_pinned_module_version(component: str) -> None:
    # Also covers binaries that print no version (registry, kube-network-policies): Go records
    # the main package's module and version in the binary, and `go version -m` reads it back.
    c = COMPONENTS[component]
    folder = binaries.ensure(component)
    version = read_versions()[c.version_key]
    for name in c.binaries:
        out = subprocess.run(
            ["go", "version", "-m", str(folder / name)], capture_output=True, text=True, check=True
        ).stdout
        # The module of the main package: the component's module, at the pinned version.
        assert ["mod", c.module, version] in [line.split()[:3] for line in out.splitlines()]


def test_cgo_components_link_statically() -> None:
    runc = COMPONENTS["runc"]
    assert runc.cgo and "seccomp" in runc.tags.split(",")
    assert "-extldflags '-static'" in binaries._ldflags(runc, "v1.5.3")
    assert "-X 'main.version=1.5.3'" in binaries._ldflags(runc, "v1.5.3")
    assert "-static" not in binaries._ldflags(COMPONENTS["containerd"], "v2.4.2")
    assert binaries._go_env(cgo=True)["CGO_ENABLED"] == "1"
    assert binaries._go_env()["CGO_ENABLED"] == "0"


def _elf_interpreter(path: Path) -> bool:
    """Whether an ELF64 file names a dynamic loader (a PT_INTERP program header)."""
    data = path.read_bytes()
    assert data[:5] == b"\x7fELF\x02", path
    (phoff,) = struct.unpack_from("<Q", data, 32)
    entsize, count = struct.unpack_from("<HH", data, 54)
    pt_interp = 3
    return any(
        struct.unpack_from("<I", data, phoff + i * entsize)[0] == pt_interp for i in range(count)
    )


def test_runc_binary_is_static_with_seccomp() -> None:
    # A static runc runs on nodes without libseccomp's shared object; `runc features` lists the
    # seccomp actions only when built with libseccomp.
    runc = binaries.binary("runc")
    assert not _elf_interpreter(runc)
    features = subprocess.run([str(runc), "features"], capture_output=True, text=True, check=True)
    assert '"SCMP_ACT_ERRNO"' in features.stdout


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
