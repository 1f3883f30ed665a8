"""Build the local control plane's binaries from Go modules and cache them by version.

There is no container runtime and no download site on the machines this project is tested on,
but the Go module proxy is reachable. So kube-apiserver, kube-controller-manager, kube-scheduler,
kubectl, etcd, kwok and helm, and the parts of a real node (kubelet, kube-proxy, containerd,
runc, CNI plugins, crictl, kube-network-policies, an OCI registry, CoreDNS) are compiled from
their Go modules, once per version, into ``<cache>/bin/<component>-<version>/`` (outside the
clone: CI clones afresh, and binaries are never committed). A component is rebuilt only when its
folder is missing.

``k8s.io/kubernetes`` and ``go.etcd.io/etcd/server/v3`` cannot be ``go install``-ed: their
go.mod files replace sibling modules with local folders. Each component is therefore built as a
dependency of a throw-away module whose go.mod turns every such local replacement into the
published version of that module (derived from the served go.mod, not typed by hand).

Stdlib only, so ``make cluster-binaries`` works before the virtualenv exists.
Usage: ``python3 -m cluster.binaries [COMPONENT...]`` with ``e2e`` on PYTHONPATH; it prints the
folder of each component, building what is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERSIONS_FILE = Path(__file__).with_name("versions.env")
PROXY_LOG_LINES = 40  # how much of a failed go command's output the error message quotes


class BuildError(RuntimeError):
    """A component could not be built; the message names the module and version."""


@dataclass(frozen=True)
class Component:
    """One Go module and the binaries built from it."""

    name: str
    module: str
    version_key: str  # the variable in versions.env
    binaries: dict[str, str]  # binary name -> Go package
    tags: str = ""
    # Maps the release version to the version of the modules its go.mod replaces locally.
    sibling_version: Callable[[str], str] = field(default=lambda v: v)
    # Version variables set with -X, as a function of the release version.
    version_ldflags: Callable[[str], dict[str, str]] = field(default=lambda v: {})
    # Copies data files the binaries need from the module source (work dir, staging dir, log).
    extras: Callable[[Path, Path, Path], None] = field(default=lambda work, dest, log: None)
    extra_files: tuple[str, ...] = ()  # what `extras` writes; part of "is it built?"
    # Built with cgo (CGO_ENABLED=1) and linked statically; everything else is pure Go.
    cgo: bool = False


def _staging_version(version: str) -> str:
    """k8s.io/kubernetes v1.N.M publishes its staging modules (k8s.io/api, ...) as v0.N.M."""
    return "v0." + version.removeprefix("v").split(".", 1)[1]


def _kubernetes_ldflags(version: str) -> dict[str, str]:
    # Without these, every binary reports v0.0.0-master, and the apiserver's compatibility
    # version logic and kubectl's version skew warnings misbehave.
    major, minor = version.removeprefix("v").split(".")[:2]
    flags: dict[str, str] = {}
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags |= {
            f"{pkg}.gitVersion": version,
            f"{pkg}.gitMajor": major,
            f"{pkg}.gitMinor": minor,
            f"{pkg}.gitTreeState": "clean",
        }
    return flags


# kwok ships no built-in behaviour: without Stage objects it refuses to start. These are the
# stages kwokctl uses by default ("fast" nodes with leases, "fast" pods), taken from the same
# release's source so they always match the binary.
KWOK_STAGE_DIRS = ("node/fast", "node/heartbeat-with-lease", "pod/fast")
KWOK_STAGES_FILE = "stages.yaml"


def _kwok_stages(work: Path, dest: Path, log: Path) -> None:
    src = Path(
        _run_go(
            ["list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"], work, log, "kwok stages"
        ).strip()
    )
    docs = []
    for sub in KWOK_STAGE_DIRS:
        for path in sorted((src / "kustomize" / "stage" / sub).glob("*.yaml")):
            if path.name != "kustomization.yaml":
                docs.append(path.read_text().strip())
    if not docs:
        raise BuildError(f"no kwok stage files under {src}/kustomize/stage")
    (dest / KWOK_STAGES_FILE).write_text("\n---\n".join(docs) + "\n")


def _containerd_ldflags(version: str) -> dict[str, str]:
    # Without these, `containerd --version` and the CRI's version RPC (which kubelet logs and
    # crictl prints) report "<release>+unknown".
    pkg = "github.com/containerd/containerd/v2"
    return {f"{pkg}/version.Version": version, f"{pkg}/version.Package": pkg}


# The CNI plugins a single-node bridge network needs: pod veths on a bridge, addresses from a
# per-node range, the loopback in each pod, and hostPort mappings.
CNI_PLUGINS = {
    "bridge": "main/bridge",
    "host-local": "ipam/host-local",
    "loopback": "main/loopback",
    "portmap": "meta/portmap",
}

COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            name="kubernetes",
            module="k8s.io/kubernetes",
            version_key="KUBERNETES_VERSION",
            binaries={
                b: f"k8s.io/kubernetes/cmd/{b}"
                for b in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
            },
            # The tags upstream's release build uses.
            tags="selinux,notest,grpcnotrace",
            sibling_version=_staging_version,
            version_ldflags=_kubernetes_ldflags,
        ),
        # A separate component, so adding node binaries leaves the control plane's cached folder
        # valid; the Go build cache shares the compiled packages between the two.
        Component(
            name="kubernetes-node",
            module="k8s.io/kubernetes",
            version_key="KUBERNETES_VERSION",
            binaries={b: f"k8s.io/kubernetes/cmd/{b}" for b in ("kubelet", "kube-proxy")},
            tags="selinux,notest,grpcnotrace",
            sibling_version=_staging_version,
            version_ldflags=_kubernetes_ldflags,
        ),
        Component(
            name="etcd",
            module="go.etcd.io/etcd/server/v3",
            version_key="ETCD_VERSION",
            binaries={"etcd": "go.etcd.io/etcd/server/v3"},
            version_ldflags=lambda v: {"go.etcd.io/etcd/api/v3/version.GitSHA": v},
        ),
        Component(
            name="kwok",
            module="sigs.k8s.io/kwok",
            version_key="KWOK_VERSION",
            binaries={"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
            version_ldflags=lambda v: {"sigs.k8s.io/kwok/pkg/consts.Version": v.removeprefix("v")},
            extras=_kwok_stages,
            extra_files=(KWOK_STAGES_FILE,),
        ),
        Component(
            name="helm",
            module="helm.sh/helm/v3",
            version_key="HELM_VERSION",
            binaries={"helm": "helm.sh/helm/v3/cmd/helm"},
            version_ldflags=lambda v: {
                "helm.sh/helm/v3/internal/version.version": v,
                "helm.sh/helm/v3/internal/version.gitTreeState": "clean",
            },
        ),
        # Pure Go: without cgo the btrfs snapshotter (the only cgo part) is left out.
        Component(
            name="containerd",
            module="github.com/containerd/containerd/v2",
            version_key="CONTAINERD_VERSION",
            binaries={
                b: f"github.com/containerd/containerd/v2/cmd/{b}"
                for b in ("containerd", "containerd-shim-runc-v2", "ctr")
            },
            tags="urfave_cli_no_docs",  # as upstream's Makefile: no man pages in the binaries
            version_ldflags=_containerd_ldflags,
        ),
        # runc needs cgo (its nsenter runs C before the Go runtime starts) and libseccomp for
        # seccomp profiles; netgo and osusergo keep the static binary free of glibc's NSS.
        # Its version comes from an embedded VERSION file; main.version is set anyway, so the
        # binary reports versions.env even if that file and the tag ever disagree.
        Component(
            name="runc",
            module="github.com/opencontainers/runc",
            version_key="RUNC_VERSION",
            binaries={"runc": "github.com/opencontainers/runc"},
            tags="seccomp,urfave_cli_no_docs,netgo,osusergo",
            version_ldflags=lambda v: {"main.version": v.removeprefix("v")},
            cgo=True,
        ),
        Component(
            name="cni-plugins",
            module="github.com/containernetworking/plugins",
            version_key="CNI_PLUGINS_VERSION",
            binaries={
                b: f"github.com/containernetworking/plugins/plugins/{pkg}"
                for b, pkg in CNI_PLUGINS.items()
            },
            version_ldflags=lambda v: {
                "github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion": v
            },
        ),
        Component(
            name="cri-tools",
            module="sigs.k8s.io/cri-tools",
            version_key="CRI_TOOLS_VERSION",
            binaries={"crictl": "sigs.k8s.io/cri-tools/cmd/crictl"},
            # Upstream's Makefile strips the "v": `crictl --version` prints "crictl version 1.N.M".
            version_ldflags=lambda v: {
                "sigs.k8s.io/cri-tools/pkg/version.Version": v.removeprefix("v")
            },
        ),
        # Pure Go (google/nftables, florianl/go-nfqueue): it talks netlink, links no C library.
        Component(
            name="kube-network-policies",
            module="sigs.k8s.io/kube-network-policies",
            version_key="KUBE_NETWORK_POLICIES_VERSION",
            binaries={"kube-network-policies": "sigs.k8s.io/kube-network-policies/cmd"},
        ),
        # The NetworkPolicy enforcer the real node runs: iptables and ipset (this kernel has no
        # nftables `queue` expression, which kube-network-policies needs; see versions.env).
        Component(
            name="kube-router",
            module="github.com/cloudnativelabs/kube-router/v2",
            version_key="KUBE_ROUTER_VERSION",
            binaries={"kube-router": "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"},
            version_ldflags=lambda v: {
                "github.com/cloudnativelabs/kube-router/v2/pkg/version.Version": v
            },
        ),
        # `registry` is an in-memory registry on localhost; `crane` pushes image tarballs into
        # it and can itself serve one that keeps blobs on disk (`crane registry serve --disk`).
        Component(
            name="go-containerregistry",
            module="github.com/google/go-containerregistry",
            version_key="GO_CONTAINERREGISTRY_VERSION",
            binaries={
                b: f"github.com/google/go-containerregistry/cmd/{b}" for b in ("registry", "crane")
            },
            version_ldflags=lambda v: {
                "github.com/google/go-containerregistry/cmd/crane/cmd.Version": v
            },
        ),
        # CoreDNS's version is a constant in its source; only the commit is a link-time variable.
        Component(
            name="coredns",
            module="github.com/coredns/coredns",
            version_key="COREDNS_VERSION",
            binaries={"coredns": "github.com/coredns/coredns"},
            version_ldflags=lambda v: {"github.com/coredns/coredns/coremain.GitCommit": v},
        ),
    )
}


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Parse the KEY=VALUE lines of versions.env (the same file make and the shell source)."""
    versions: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            versions[key.strip()] = value.strip()
    return versions


def cache_root() -> Path:
    """Where binaries live: $MODELDEPLOY_CACHE, else $XDG_CACHE_HOME/modeldeploy, else ~/.cache."""
    if env := os.environ.get("MODELDEPLOY_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modeldeploy"


def component_dir(component: Component, version: str) -> Path:
    return cache_root() / "bin" / f"{component.name}-{version}"


def _go_env(cgo: bool = False) -> dict[str, str]:
    # -mod=mod and GOWORK=off keep stray vendor folders or go.work files from changing the build;
    # GOTOOLCHAIN=local makes a too-old Go fail loudly instead of silently fetching another one.
    # cgo is off unless a component needs it: static binaries need no C toolchain or libraries.
    env = dict(os.environ)
    env |= {"GOFLAGS": "-mod=mod", "GOWORK": "off", "GOTOOLCHAIN": "local"}
    env["CGO_ENABLED"] = "1" if cgo else "0"
    return env


def _run_go(args: list[str], cwd: Path, log: Path, what: str, cgo: bool = False) -> str:
    """Run one go command, appending its output to the log; raise BuildError naming `what`."""
    go = shutil.which("go")
    if go is None:
        raise BuildError(f"{what}: the Go toolchain (go >= 1.26) is not on PATH")
    with log.open("a") as out:
        out.write(f"$ go {' '.join(args)}\n")
        out.flush()
        proc = subprocess.run(
            [go, *args], cwd=cwd, env=_go_env(cgo), capture_output=True, text=True, check=False
        )
        out.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-PROXY_LOG_LINES:])
        raise BuildError(f"{what} failed (go {args[0]}, full log: {log}):\n{tail}")
    return proc.stdout


def _upstream_gomod(module: str, version: str, work: Path, log: Path) -> dict[str, Any]:
    """The module's own go.mod as `go mod edit -json` sees it (downloaded through the proxy)."""
    what = f"downloading {module}@{version}"
    info = json.loads(_run_go(["mod", "download", "-json", f"{module}@{version}"], work, log, what))
    if "Error" in info:
        raise BuildError(f"{what} failed: {info['Error']}")
    gomod: dict[str, Any] = json.loads(
        _run_go(["mod", "edit", "-json", info["GoMod"]], work, log, what)
    )
    return gomod


def throwaway_gomod(component: Component, version: str, upstream: dict[str, Any]) -> str:
    """go.mod text for a local module that depends on `component` at `version`.

    Keeps the release's go and godebug lines (they change runtime defaults), copies replacements
    that point at other module versions, and turns each replacement by a local folder of a
    required module into that module's published version.
    """
    lines = ["module modeldeploy.local/build", "", f"go {upstream['Go']}"]
    lines += [f"godebug {d['Key']}={d['Value']}" for d in upstream.get("GoDebug") or []]
    lines.append(f"require {component.module} {version}")
    required = {r["Path"] for r in upstream.get("Require") or []}
    sibling = component.sibling_version(version)
    for rep in upstream.get("Replace") or []:
        old, new = rep["Old"], rep["New"]
        old_spec = old["Path"] + (f" {old['Version']}" if old.get("Version") else "")
        if new.get("Version"):
            lines.append(f"replace {old_spec} => {new['Path']} {new['Version']}")
        elif old["Path"] in required:
            lines.append(f"replace {old['Path']} => {old['Path']} {sibling}")
        # Other local replacements (e.g. etcd's ./FORBIDDEN_DEPENDENCY guards) are not needed
        # outside the module's own repository.
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialize builds of one thing (e.g. `make test` and `make cluster-up` at once); the
    image builds (images.py) use it too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ldflags(component: Component, version: str) -> str:
    """-s -w, the version variables, and for cgo a static link (no shared libseccomp at run)."""
    xs = " ".join(f"-X '{k}={v}'" for k, v in component.version_ldflags(version).items())
    static = "-linkmode external -extldflags '-static'" if component.cgo else ""
    return " ".join(f for f in ("-s -w", xs, static) if f)


def _build(component: Component, version: str, dest: Path) -> None:
    root = cache_root()
    work = root / "work" / f"{component.name}-{version}"
    work.mkdir(parents=True, exist_ok=True)
    log = root / "logs" / f"{component.name}-{version}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    what = f"building {component.module}@{version}"
    upstream = _upstream_gomod(component.module, version, work, log)
    (work / "go.mod").write_text(throwaway_gomod(component, version, upstream))
    (work / "go.sum").unlink(missing_ok=True)
    # Name the version on every package: a bare `go get pkg` would upgrade the module to latest.
    pkgs = [f"{pkg}@{version}" for pkg in component.binaries.values()]
    _run_go(["get", *pkgs], work, log, what, component.cgo)
    # Build into a fresh folder and rename it into place, so a half-built set is never cached.
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for name, pkg in component.binaries.items():
            args = ["build", "-trimpath", "-ldflags", _ldflags(component, version)]
            if component.tags:
                args += ["-tags", component.tags]
            out = ["-o", str(staging / name), pkg]
            _run_go([*args, *out], work, log, f"{what} ({name})", component.cgo)
        component.extras(work, staging, log)
        if dest.exists():  # an incomplete set from an older layout
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure(name: str, versions: dict[str, str] | None = None) -> Path:
    """Return the folder holding the component's binaries, building them first if missing."""
    component = COMPONENTS[name]
    version = (versions or read_versions())[component.version_key]
    dest = component_dir(component, version)
    if _complete(component, dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with locked(dest.parent / f".{dest.name}.lock"):
        if not _complete(component, dest):  # another process may have built it meanwhile
            started = time.monotonic()
            print(f"building {component.module}@{version} -> {dest}", file=sys.stderr, flush=True)
            _build(component, version, dest)
            took = time.monotonic() - started
            print(f"built {component.name}-{version} in {took:.0f}s", file=sys.stderr, flush=True)
    return dest


def _complete(component: Component, dest: Path) -> bool:
    return all((dest / f).is_file() for f in (*component.binaries, *component.extra_files))


def binary(name: str, versions: dict[str, str] | None = None) -> Path:
    """Path of one cached binary (e.g. "kube-apiserver"), building its component if missing."""
    for component in COMPONENTS.values():
        if name in component.binaries:
            return ensure(component.name, versions) / name
    raise KeyError(f"no component builds a binary named {name!r}")


def build_each(names: list[str], ensure: Callable[[str], object], error: type[Exception]) -> int:
    """Build each named thing, printing its path; keep going past a failure so one run names
    every one that fails, then return 1 (the command's exit status)."""
    failed: list[str] = []
    for name in names:
        try:
            print(ensure(name), flush=True)
        except error as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            failed.append(name)
    if failed:
        print(f"ERROR: could not build: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("components", nargs="*", help=f"default: all of {', '.join(COMPONENTS)}")
    args = parser.parse_args(argv)
    names = args.components or list(COMPONENTS)
    if unknown := [n for n in names if n not in COMPONENTS]:
        parser.error(f"unknown component(s): {', '.join(unknown)}")
    return build_each(names, ensure, BuildError)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
