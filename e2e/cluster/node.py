"""A real Kubernetes node on this machine: containerd, runc, CNI, kubelet, kube-proxy, CoreDNS,
NetworkPolicy enforcement and a local OCI registry, beside the control plane of localcluster.py.

kwok's fake nodes show what the scheduler decides; this node shows what only a kubelet shows:
images that start, mounts, security contexts, Services and DNS that route, policies that drop.

Everything lives in the cluster's folder, under fixed names that say it is ours, so that one
function (`cleanup`) removes it all again given only that folder: it is what `make cluster-down`
and the test session's teardown both call, and it is safe to call twice.

Host layout (one real node per machine: kube-proxy and the NetworkPolicy agent own global
netfilter tables, so a second node would fight the first; a lock refuses one):
- `HOST_IP` on the loopback interface (this kernel has no dummy links): the address the node,
  the apiserver and CoreDNS listen on, reachable from pods through their gateway (127.0.0.1
  inside a pod is the pod itself);
- `mdcni0`, the pods' bridge (CNI bridge plugin), pods in `POD_SUBNET`;
- nft table `inet modeldeploy-node`: pods may reach only the pod and Service ranges and this
  host; forwarding anywhere else is dropped, so nothing a pod does leaves the machine.

The machine mounts cgroup v1 (hybrid), with no systemd: the kubelet runs with the cgroupfs
driver and `failCgroupV1: false`, which 1.35+ kubelets need to start on v1 at all. Root here
lacks CAP_SYS_RESOURCE, so no component lowers an OOM score (containerd clamps them).

Stdlib only (the make targets run it before the virtualenv exists).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import binaries

if TYPE_CHECKING:
    from .localcluster import LocalCluster

NODE_NAME = "realnode-0"
NODE_LABEL = ("modeldeploy.dev/real-node", "true")
HOST_IP = "198.18.255.1"
HOST_LINK = "lo"
BRIDGE = "mdcni0"
POD_CIDR = "198.18.0.0/16"
POD_SUBNET = "198.18.0.0/24"  # the one node's share; the host address lies outside it
SERVICE_CIDR = "198.19.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
NFT_TABLE = "modeldeploy-node"
NODE_LOCK_NAME = "realnode.lock"  # in the cache folder: held while a node runs
PAUSE_IMAGE_REPO = "modeldeploy/pause"
# Everything the node runs, built from Go modules (binaries.py) before anything starts.
BINARIES = (
    "kubelet",
    "kube-proxy",
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "bridge",
    "host-local",
    "loopback",
    "portmap",
    "crictl",
    "kube-router",
    "crane",
    "coredns",
)
# Kernel parameters the node needs, restored by cleanup: routing between the bridge and the
# host, and bridged pod traffic through netfilter (Services and policies of pods on one bridge).
SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
}


class NodeError(RuntimeError):
    """The real node could not be set up; the message names the part and its log."""


def sh(*args: str, check: bool = True, input: str | None = None) -> str:
    """Run one host command (ip, nft, mount); a failure names the command and its output."""
    done = subprocess.run(
        list(args), capture_output=True, text=True, input=input, check=False, timeout=120
    )
    if check and done.returncode != 0:
        raise NodeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def require_host() -> None:
    """Fail loudly, naming the part, when the machine cannot host a node."""
    if os.geteuid() != 0:
        raise NodeError("the real node needs root (network namespaces, mounts, cgroups)")
    for tool in ("ip", "nft", "iptables", "mount", "unshare", "buildah", "skopeo"):
        if shutil.which(tool) is None:
            raise NodeError(f"{tool} is not installed (scripts/node-packages.sh installs it)")
    filesystems = Path("/proc/filesystems").read_text()
    for fs in ("overlay", "cgroup"):
        if fs not in filesystems:
            raise NodeError(f"the kernel lacks the {fs} filesystem the node needs")
    for controller in ("cpu", "cpuacct", "cpuset", "memory", "pids"):
        if not Path("/sys/fs/cgroup", controller).is_dir():
            raise NodeError(f"cgroup v1 controller {controller} is not mounted at /sys/fs/cgroup")
    if not Path("/proc/sys/net/bridge").is_dir():
        with contextlib.suppress(NodeError):
            sh("modprobe", "br_netfilter")
        if not Path("/proc/sys/net/bridge").is_dir():
            raise NodeError("br_netfilter is missing: bridged pod traffic would skip netfilter")


# -- what is written where -------------------------------------------------------------------
class Layout:
    """Paths of one node inside the cluster folder: one subfolder per part."""

    def __init__(self, workdir: Path) -> None:
        self.root = workdir / "node"
        self.run = self.root / "run"
        self.containerd = self.root / "containerd"
        self.containerd_sock = self.run / "containerd.sock"
        self.cni_conf = self.root / "cni-conf"
        self.cni_ipam = self.root / "cni-ipam"
        self.kubelet = self.root / "kubelet"
        self.state_file = self.root / "host.json"

    def folders(self) -> tuple[Path, ...]:
        return (
            self.run,
            self.containerd,
            self.cni_conf,
            self.cni_ipam,
            self.kubelet,
        )


def containerd_config(layout: Layout, pause_image: str) -> str:
    """containerd 2.4 configuration (version 4): CRI on our socket, runc with cgroupfs, CNI
    from the cached plugins, plain http to the local registry (certs.d/<host>/hosts.toml), and
    every path it would otherwise take on the host (/opt/containerd, the NRI socket, network
    namespaces under /var/run/netns, /etc/containerd/conf.d) moved into the node's folder or
    turned off."""
    cni_bin = binaries.binary("bridge").parent
    runc = binaries.binary("runc")
    cri_runtime = "plugins.'io.containerd.cri.v1.runtime'"
    return f"""version = 4
root = '{layout.containerd}/root'
state = '{layout.containerd}/state'
imports = []

[plugins.'io.containerd.server.v1.grpc']
  address = '{layout.containerd_sock}'

[plugins.'io.containerd.server.v1.ttrpc']
  address = '{layout.containerd_sock}.ttrpc'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{pause_image}'
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = '{layout.containerd}/certs.d'

[{cri_runtime}]
  netns_mounts_under_state_dir = true
  # Root here lacks CAP_SYS_RESOURCE: no process may lower its OOM score, so the negative
  # scores the kubelet asks for (sandboxes, Guaranteed pods) are clamped to ours, as rootless
  # runtimes do.
  restrict_oom_score_adj = true
  [{cri_runtime}.cni]
    bin_dirs = ['{cni_bin}']
    conf_dir = '{layout.cni_conf}'
  [{cri_runtime}.containerd.runtimes.runc]
    runtime_type = 'io.containerd.runc.v2'
    [{cri_runtime}.containerd.runtimes.runc.options]
      BinaryName = '{runc}'
      SystemdCgroup = false

[plugins.'io.containerd.internal.v1.opt']
  path = '{layout.containerd}/opt'

[plugins.'io.containerd.nri.v1.nri']
  disable = true
"""


def registry_hosts(registry: str) -> str:
    """certs.d/<registry>/hosts.toml: the local registry speaks plain http."""
    return (
        f'server = "http://{registry}"\n\n'
        f'[host."http://{registry}"]\n  capabilities = ["pull", "resolve"]\n'
    )


def cni_config(layout: Layout) -> dict[str, Any]:
    """The pods' network: one bridge, host-local addresses, no masquerade (nothing leaves)."""
    return {
        "cniVersion": "1.0.0",
        "name": "modeldeploy",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                # A pod reaching itself through its own Service comes back over the bridge.
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(layout.cni_ipam),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(layout: Layout, port: int, healthz_port: int, ca_file: Path) -> dict[str, Any]:
    """KubeletConfiguration for a cgroup v1 host without systemd, serving only on HOST_IP."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": HOST_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "cgroupDriver": "cgroupfs",
        # 1.35+ kubelets refuse cgroup v1 unless told; this machine mounts v1 (hybrid).
        "failCgroupV1": False,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_sock}",
        "clusterDNS": [HOST_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        # Pods get only cluster DNS: no upstream resolver, so no name outside leads anywhere.
        "resolvConf": str(layout.root / "resolv.conf"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "failSwapOn": False,
        "serializeImagePulls": False,
        "maxPods": 40,
        # The machine is shared with the tests themselves: evict only when really short.
        "evictionHard": {
            "memory.available": "200Mi",
            "nodefs.available": "2%",
            "imagefs.available": "2%",
            "nodefs.inodesFree": "2%",
        },
        "imageGCHighThresholdPercent": 99,
        "imageGCLowThresholdPercent": 98,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "staticPodPath": "",
        "protectKernelDefaults": False,
        "containerLogMaxSize": "10Mi",
        "shutdownGracePeriod": "0s",
        "oomScoreAdj": 0,  # it cannot lower its own score here (no CAP_SYS_RESOURCE)
        # No KUBE-FIREWALL and canary chains of the kubelet's own in the host's iptables.
        "makeIPTablesUtilChains": False,
    }


def kube_proxy_config(kubeconfig: Path, healthz_port: int, metrics_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "bindAddress": HOST_IP,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "clusterCIDR": POD_CIDR,
        # Leave the host's conntrack sysctls alone (the node is a guest on this machine).
        "conntrack": {"maxPerCore": 0, "min": 0},
        "oomScoreAdj": 0,
    }


def corefile(kubeconfig: Path, health_port: int) -> str:
    """Cluster DNS only: names under cluster.local answer from the API; anything else is
    refused, never forwarded (no traffic leaves the machine)."""
    return f"""{CLUSTER_DOMAIN}:53 in-addr.arpa:53 {{
    bind {HOST_IP}
    errors
    health 127.0.0.1:{health_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
    }}
    cache 5
}}
.:53 {{
    bind {HOST_IP}
    template ANY ANY {{
        rcode REFUSED
    }}
}}
"""


def egress_guard() -> str:
    """nft script: forwarded pod traffic may go to pods and Services, nowhere else."""
    return f"""table inet {NFT_TABLE} {{
    chain forward {{
        type filter hook forward priority -10; policy accept;
        ip saddr {POD_CIDR} ip daddr != {{ 198.18.0.0/15 }} drop
    }}
}}
"""


# -- bring-up --------------------------------------------------------------------------------
class RealNode:
    """One kubelet node, started with and inside a LocalCluster."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.layout = Layout(cluster.workdir)
        self.registry = ""  # host:port of the local registry pods pull from
        self.tokens = {
            "node": os.urandom(24).hex(),
            "proxy": os.urandom(24).hex(),
        }
        self._lock: IO[str] | None = None

    def token_lines(self) -> list[str]:
        """Lines for the apiserver's token file: the kubelet as its node, kube-proxy as itself
        (the bootstrap RBAC binds system:node-proxier to that user)."""
        return [
            f"{self.tokens['node']},system:node:{NODE_NAME},node-{NODE_NAME},system:nodes",
            f"{self.tokens['proxy']},system:kube-proxy,kube-proxy,",
        ]

    def prepare_host(self) -> None:
        """Before the control plane starts: the host address it binds to, and the guards."""
        require_host()
        lock = binaries.cache_root() / NODE_LOCK_NAME
        lock.parent.mkdir(parents=True, exist_ok=True)
        self._lock = lock.open("a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NodeError(
                f"another real node runs on this machine ({lock} is held); stop it first "
                "with `make cluster-down`"
            ) from None
        # The lock names the last node's folder: a node whose owner was killed outright (no
        # teardown ran) is cleaned up by the next one.
        self._lock.seek(0)
        last = self._lock.read().strip()
        stale = bool(last) and Path(last) != self.cluster.workdir
        if stale and (problems := cleanup(Path(last))):
            raise NodeError(f"a killed node left what cannot be removed: {problems}")
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(str(self.cluster.workdir))
        self._lock.flush()
        for folder in self.layout.folders():
            folder.mkdir(parents=True, exist_ok=True)
        saved = {key: Path("/proc/sys", key).read_text().strip() for key in SYSCTLS}
        state = {"sysctls": saved, "netfilter": sorted(map(list, netfilter_objects()))}
        self.layout.state_file.write_text(json.dumps(state, indent=2) + "\n")
        for key, value in SYSCTLS.items():
            Path("/proc/sys", key).write_text(value)
        sh("ip", "addr", "replace", f"{HOST_IP}/32", "dev", HOST_LINK)
        sh("nft", "-f", "-", input=egress_guard())

    def start(self, deadline: float) -> None:
        """After the control plane is up: every node process, then wait for Ready."""
        from .images import push_image

        layout = self.layout
        cluster = self.cluster
        self.registry = self._start_registry(deadline)
        # The sandbox image: Debian's static catatonit in pause mode (registry.k8s.io's pause
        # cannot be pulled here), from e2e/cluster/pause.Dockerfile.
        pause = push_image("pause", self.registry_port)
        certs = layout.containerd / "certs.d" / self.registry
        certs.mkdir(parents=True, exist_ok=True)
        (certs / "hosts.toml").write_text(registry_hosts(self.registry))
        (layout.containerd / "config.toml").write_text(containerd_config(layout, pause))
        (layout.cni_conf / "10-modeldeploy.conflist").write_text(
            json.dumps(cni_config(layout), indent=2)
        )
        (layout.root / "resolv.conf").write_text("")
        containerd = cluster._spawn(
            "containerd",
            [
                str(binaries.binary("containerd")),
                f"--config={layout.containerd / 'config.toml'}",
                "--log-level=warn",
            ],
            env=_shim_path(),
        )
        cluster._wait(containerd, deadline, lambda: self._crictl_ok())
        self._start_coredns(deadline)
        self._start_kubelet(deadline)
        self._start_kube_proxy(deadline)
        self._start_network_policies(deadline)

    def _crictl_ok(self) -> bool:
        done = subprocess.run(
            [str(binaries.binary("crictl")), *self.crictl_flags(), "info"],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    @property
    def registry_port(self) -> int:
        return int(self.registry.rsplit(":", 1)[1])

    def crictl_flags(self) -> list[str]:
        endpoint = f"unix://{self.layout.containerd_sock}"
        return [f"--runtime-endpoint={endpoint}", f"--image-endpoint={endpoint}", "--timeout=30s"]

    def _kubeconfig(self, name: str, token: str) -> Path:
        from .localcluster import kubeconfig_text

        path = self.layout.root / f"{name}.kubeconfig"
        path.write_text(kubeconfig_text(self.cluster.server, self.cluster.ca_file, token))
        path.chmod(0o600)
        return path

    def _start_registry(self, deadline: float) -> str:
        from .localcluster import _http_ok, free_port

        port = free_port()
        # Blobs outside the run's folder: content-addressed, so the next run's push of the same
        # multi-GB serving image only checks that each layer is there.
        storage = binaries.cache_root() / "registry"
        storage.mkdir(parents=True, exist_ok=True)
        address = f"127.0.0.1:{port}"
        crane = str(binaries.binary("crane"))
        proc = self.cluster._spawn(
            "registry",
            [crane, "registry", "serve", f"--address={address}", f"--disk={storage}"],
            env={"HOME": str(self.layout.root)},
        )
        self.cluster._wait(proc, deadline, lambda: _http_ok(f"http://{address}/v2/"))
        return address

    def _start_coredns(self, deadline: float) -> None:
        from .localcluster import _http_ok, free_port

        health = free_port()
        kubeconfig = self._kubeconfig("coredns", self.cluster.token)
        (self.layout.root / "Corefile").write_text(corefile(kubeconfig, health))
        proc = self.cluster._spawn(
            "coredns", [str(binaries.binary("coredns")), f"-conf={self.layout.root / 'Corefile'}"]
        )
        self.cluster._wait(proc, deadline, lambda: _http_ok(f"http://127.0.0.1:{health}/health"))

    def _start_kubelet(self, deadline: float) -> None:
        from .localcluster import _http_ok, free_port

        port, healthz = free_port(), free_port()
        config = self.layout.root / "kubelet.json"
        config.write_text(
            json.dumps(kubelet_config(self.layout, port, healthz, self.cluster.ca_file), indent=2)
        )
        proc = self.cluster._spawn(
            "kubelet",
            [
                str(binaries.binary("kubelet")),
                f"--config={config}",
                f"--kubeconfig={self._kubeconfig('kubelet', self.tokens['node'])}",
                f"--root-dir={self.layout.kubelet}",
                f"--cert-dir={self.layout.kubelet / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={HOST_IP}",
                f"--node-labels={'='.join(NODE_LABEL)}",
                "--v=1",
            ],
            env=_shim_path(),
        )
        self.cluster._wait(proc, deadline, lambda: _http_ok(f"http://127.0.0.1:{healthz}/healthz"))
        self.cluster._wait(proc, deadline, lambda: NODE_NAME in self.cluster._ready_nodes())

    def _start_kube_proxy(self, deadline: float) -> None:
        from .localcluster import _http_ok, free_port

        healthz, metrics = free_port(), free_port()
        config = self.layout.root / "kube-proxy.json"
        kubeconfig = self._kubeconfig("kube-proxy", self.tokens["proxy"])
        config.write_text(json.dumps(kube_proxy_config(kubeconfig, healthz, metrics), indent=2))
        proc = self.cluster._spawn(
            "kube-proxy", [str(binaries.binary("kube-proxy")), f"--config={config}", "--v=1"]
        )
        self.cluster._wait(proc, deadline, lambda: _http_ok(f"http://127.0.0.1:{healthz}/livez"))

    def _start_network_policies(self, deadline: float) -> None:
        """kube-router's firewall alone: NetworkPolicies as iptables rules and ipsets. (The
        nftables enforcer, kube-network-policies, needs the nftables `queue` expression, which
        this kernel lacks; see versions.env.)"""
        from .localcluster import _http_ok, free_port

        health = free_port()
        kubeconfig = self._kubeconfig("network-policies", self.cluster.token)
        proc = self.cluster._spawn(
            "kube-router",
            [
                str(binaries.binary("kube-router")),
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={NODE_NAME}",
                "--run-firewall=true",
                "--run-router=false",
                "--run-service-proxy=false",
                "--enable-cni=false",
                "--enable-pod-egress=false",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--health-port={health}",
                "--v=1",
            ],
        )
        self.cluster._wait(proc, deadline, lambda: _http_ok(f"http://127.0.0.1:{health}/healthz"))


def _shim_path() -> dict[str, str]:
    """PATH with containerd's folder first: containerd finds its runc shim there."""
    return {"PATH": f"{binaries.binary('containerd').parent}:{os.environ['PATH']}"}


# -- tear-down -------------------------------------------------------------------------------
def _our_mounts(root: Path) -> list[str]:
    """Mount points under the node's folder, deepest first (so parents unmount last)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(root) or point.startswith(f"{root}/"):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def _processes_under(root: Path) -> list[int]:
    """Pids whose command line names the node's folder: containerd's shims and the containers'
    processes they parent are started detached, so the cluster's pid list does not hold them."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if str(root).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
    return pids


def _kill_tree(pids: list[int]) -> None:
    """SIGKILL the shims and everything below them (their children die with the sandbox)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(proc.name))
    todo, seen = list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, []))
    for pid in seen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _remove_cgroups() -> None:
    """The kubelet's cgroups (kubepods*) in each v1 hierarchy, leaves first."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / "kubepods"
        if not top.is_dir():
            continue
        for path in sorted(top.rglob("*"), key=lambda p: p.as_posix().count("/"), reverse=True):
            if path.is_dir():
                with contextlib.suppress(OSError):
                    path.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def _ruleset() -> list[dict[str, Any]]:
    return list(json.loads(sh("nft", "-j", "list", "ruleset"))["nftables"])


def netfilter_objects() -> set[tuple[str, ...]]:
    """Every nftables table and chain on the host, iptables' included (iptables-nft)."""
    found: set[tuple[str, ...]] = set()
    for item in _ruleset():
        if "table" in item:
            found.add(("table", item["table"]["family"], item["table"]["name"]))
        elif "chain" in item:
            chain = item["chain"]
            found.add(("chain", chain["family"], chain["table"], chain["name"]))
    return found


def _undo_netfilter(before: set[tuple[str, ...]]) -> None:
    """Remove every table and chain made since `before` (kube-proxy's, kube-router's, the CNI
    plugins', ours), and the rules of older chains that jump into them. Whoever made them, the
    node did: nothing else on this machine touches netfilter while it runs."""
    new = netfilter_objects() - before
    new_chains = {o[1:] for o in new if o[0] == "chain"}
    for item in _ruleset():
        rule = item.get("rule")
        if rule is None or (rule["family"], rule["table"], rule["chain"]) in new_chains:
            continue
        targets = {e.get("jump", e.get("goto", {})).get("target") for e in rule["expr"]}
        if any((rule["family"], rule["table"], t) in new_chains for t in targets if t):
            sh("nft", "delete", "rule", rule["family"], rule["table"], rule["chain"],
               "handle", str(rule["handle"]), check=False)  # fmt: skip
    for family, table, chain in sorted(new_chains):
        sh("nft", "flush", "chain", family, table, chain, check=False)
    for family, table, chain in sorted(new_chains):
        if ("table", family, table) not in new:
            sh("nft", "delete", "chain", family, table, chain, check=False)
    for _, family, table in sorted(o for o in new if o[0] == "table"):
        sh("nft", "delete", "table", family, table, check=False)


def cleanup(workdir: Path, wait: Callable[[float], None] = time.sleep) -> list[str]:
    """Remove everything a real node left: containers, mounts, interfaces, netfilter tables,
    ipsets, cgroups, sysctls. Runs after the node's own processes were stopped; idempotent.
    Returns what it could not remove (empty when the host is clean)."""
    layout = Layout(workdir)
    problems: list[str] = []
    for _ in range(20):
        pids = _processes_under(layout.root)
        if not pids:
            break
        _kill_tree(pids)
        wait(0.2)
    else:
        problems.append(f"processes still running under {layout.root}: {pids}")
    for point in _our_mounts(layout.root):
        done = subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        if done.returncode != 0:
            problems.append(f"umount {point}: {done.stderr.decode().strip()}")
    if f" {BRIDGE}:" in sh("ip", "-o", "link", "show"):
        sh("ip", "link", "delete", BRIDGE, check=False)
    if f" {HOST_IP}/32 " in sh("ip", "-o", "addr", "show", "dev", HOST_LINK):
        sh("ip", "addr", "del", f"{HOST_IP}/32", "dev", HOST_LINK, check=False)
    state: dict[str, Any] = {}
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        state = json.loads(layout.state_file.read_text())
    if "netfilter" in state:
        _undo_netfilter({tuple(o) for o in state["netfilter"]})
    router = binaries.component_dir(
        binaries.COMPONENTS["kube-router"], binaries.read_versions()["KUBE_ROUTER_VERSION"]
    )
    if (router / "kube-router").is_file():
        # Its ipsets, which can go only once no rule refers to them (undone above).
        subprocess.run([str(router / "kube-router"), "--cleanup-config"], capture_output=True,
                       check=False)  # fmt: skip
    _remove_cgroups()
    for key, value in state.get("sysctls", {}).items():
        Path("/proc/sys", key).write_text(value)
    if layout.root.exists():
        shutil.rmtree(layout.root, ignore_errors=True)
        if layout.root.exists():
            problems.append(f"could not remove {layout.root}")
    return problems


def host_footprint() -> dict[str, list[str]]:
    """What a node could leave on the host, for before/after comparisons in tests: the bridge,
    veths and the host address, netfilter tables and chains, ipsets, mounts of a node folder,
    kubepods cgroups, containerd shims."""
    links = [
        line.split(":")[1].strip().split("@")[0]
        for line in sh("ip", "-o", "link", "show").splitlines()
    ]
    ours = [name for name in links if name == BRIDGE or name.startswith("veth")]
    ours += [HOST_IP] if f" {HOST_IP}/" in sh("ip", "-o", "addr", "show") else []
    mounts = [
        point
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if "/node/" in (point := line.split()[4])
    ]
    ipsets = sh("ipset", "list", "-n", check=False) if shutil.which("ipset") else ""
    return {
        "links": sorted(ours),
        "netfilter": sorted(" ".join(o) for o in netfilter_objects()),
        "ipsets": sorted(ipsets.split()),
        "mounts": sorted(mounts),
        "cgroups": sorted(
            str(h) for h in Path("/sys/fs/cgroup").iterdir() if (h / "kubepods").exists()
        ),
        "shims": sorted(str(p) for p in _shim_pids()),
    }


def _shim_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if b"containerd-shim" in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
    return pids
