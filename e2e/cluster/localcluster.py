"""A real Kubernetes control plane on this machine, with kwok driving fake (GPU) nodes.

Starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok as plain processes
(no container runtime), on free ports in one folder, so two runs never collide. Pods are
scheduled by the real scheduler and marked Running/Ready by kwok; nothing really runs in them.
What the operator is tested against is real: the apiserver's schema validation, CEL, RBAC,
subresources and watches, and the controller-manager's garbage collection.

The same code serves the pytest session fixture (e2e/conftest.py) and ``make cluster-up`` /
``make cluster-down``, which leave a cluster running for a person between two commands: the
pids (with their start times, so a reused pid is never signalled) are recorded in the folder's
state.json. Stdlib only, so the Make targets work without the virtualenv.

Usage: ``python3 -m cluster.localcluster up|down|status STATE_DIR`` with ``e2e`` on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import binaries, node

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
# The benchmarking range (RFC 2544): Service addresses that can never mean another machine.
SERVICE_CIDR = "198.19.0.0/16"
KUBERNETES_SERVICE_IP = "198.19.0.1"
LOOPBACK = "127.0.0.1"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Control plane components start in this order and stop in the reverse one.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
STATE_FILE = "state.json"


class ClusterError(RuntimeError):
    """The cluster did not come up; the message names the component and its log."""


class CommandError(subprocess.CalledProcessError):
    """A kubectl or helm command failed; unlike its base class, it shows the command's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr:\n{self.stderr}"


def _run(
    args: list[str], input: str | None, check: bool, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args, input=input, capture_output=True, text=True, env=env, timeout=180, check=False
    )
    if check and done.returncode != 0:
        raise CommandError(done.returncode, args, done.stdout, done.stderr)
    return done


@dataclass(frozen=True)
class FakeNode:
    """A Node object that kwok keeps Ready; the scheduler sees its capacity as real."""

    name: str
    gpus: int = 0
    gpu_product: str = "NVIDIA-H100-80GB-HBM3"
    cpu: str = "64"
    memory: str = "512Gi"
    pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        capacity: dict[str, str] = {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods)}
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", **self.labels}
        if self.gpus:
            capacity[GPU_RESOURCE] = str(self.gpus)
            labels[GPU_PRODUCT_LABEL] = self.gpu_product
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1]},
            },
            # Without a kubelet nothing else would set capacity; the apiserver keeps the status
            # given at creation.
            "status": {"capacity": capacity, "allocatable": dict(capacity)},
        }


DEFAULT_NODES: tuple[FakeNode, ...] = (
    FakeNode("gpu-node-0", gpus=8),
    FakeNode("gpu-node-1", gpus=8),
    FakeNode("cpu-node-0"),
)


def free_port() -> int:
    """A port free right now on 127.0.0.1 (the kernel picks it, so parallel runs differ)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.25
) -> Any:
    """Poll until `condition()` is truthy and return its value; fail naming `what`.

    The same contract as modeldeploy_serving.procs.wait_until, kept here because this module
    runs under the system python3, before the virtualenv exists."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _proc_start_time(pid: int) -> str | None:
    """The start time of a live pid, to tell our process from a later one reusing its pid.

    None when the pid is gone or a zombie (exited, not yet reaped by its parent).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields 3 (state) and 22 (start time); the command name (field 2) may contain spaces,
    # so split after its closing parenthesis.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


@dataclass
class Proc:
    """One started component: enough to stop it later from another process."""

    name: str
    pid: int
    start_time: str
    log: str

    def alive(self) -> bool:
        return _proc_start_time(self.pid) == self.start_time

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; only if the pid is still the one we started."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(self.pid)
            if not self.alive():
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        while self.alive():
            _reap(self.pid)
            time.sleep(0.05)


def _die_with_parent() -> None:
    """In the child before exec: kill it when the process that started it dies.

    A test run killed outright (CI timeout, SIGKILL) then leaves no control plane behind.
    SIGKILL, not SIGTERM: all components die at once, and an apiserver whose etcd is gone
    never finishes its graceful shutdown.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie (looks alive)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise ClusterError("openssl is needed to make the cluster's keys and certificates")
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(pki: Path, host_address: str = LOOPBACK) -> None:
    """A CA, the apiserver's serving certificate, its kubelet client certificate, and the
    service-account signing key.

    One RSA key signs and verifies ServiceAccount tokens (TokenRequest); the CA is what
    kubeconfigs trust and what the controller-manager publishes as kube-root-ca.crt. The
    serving certificate names every address a client uses: loopback, the host address pods
    reach, and the `kubernetes` Service's address.
    """
    pki.mkdir(parents=True, exist_ok=True)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=modeldeploy-local-ca",
        cwd=pki,
    )  # fmt: skip
    (pki / "serving.ext").write_text(
        f"subjectAltName=IP:{LOOPBACK},IP:{host_address},DNS:localhost,DNS:kubernetes,"
        f"DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:{KUBERNETES_SERVICE_IP}\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\n"
    )
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "serving.key",
        "-out", "serving.csr", "-subj", "/CN=kube-apiserver", cwd=pki,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "serving.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "30", "-extfile", "serving.ext", "-out", "serving.crt",
        cwd=pki,
    )  # fmt: skip
    # What the apiserver shows a kubelet (logs, exec, port-forward): a client in system:masters.
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "kubelet-client.key",
        "-out", "kubelet-client.csr", "-subj", "/O=system:masters/CN=kube-apiserver-kubelet-client",
        cwd=pki,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "kubelet-client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "30", "-out", "kubelet-client.crt", cwd=pki,
    )  # fmt: skip


def kubeconfig_text(server: str, ca_file: Path, token: str, name: str = "modeldeploy-local") -> str:
    """A kubeconfig (JSON is valid YAML) with the CA embedded, so it can be copied elsewhere."""
    ca_data = base64.b64encode(ca_file.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": "admin", "namespace": "default"}}
        ],
        "current-context": name,
    }
    return json.dumps(config, indent=2) + "\n"


class LocalCluster:
    """Start, use and stop one local control plane living in `workdir`."""

    def __init__(
        self,
        workdir: Path,
        nodes: Sequence[FakeNode] = DEFAULT_NODES,
        versions: dict[str, str] | None = None,
        detach: bool = False,
        real_node: bool = False,
    ) -> None:
        """`detach`: the cluster outlives this Python process (`make cluster-up`); otherwise
        the kernel stops every component when this process dies, even by SIGKILL.
        `real_node`: also run a kubelet node with containerd (node.py) beside the fake ones."""
        self.workdir = workdir
        self.detach = detach
        self.nodes = tuple(nodes)
        self.versions = versions or binaries.read_versions()
        self.procs: list[Proc] = []
        # Kept so their exit status is collected; `procs` is what another process can use.
        self._popens: list[subprocess.Popen[bytes]] = []
        self.token = ""
        self.server = ""
        self.node = node.RealNode(self) if real_node else None
        # Pods on a real node cannot reach the host's loopback: the apiserver then listens on
        # the node's host address, which both pods and this process reach.
        self.host_address = node.HOST_IP if real_node else LOOPBACK

    # -- paths -------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the apiserver's serving certificate."""
        return self.pki / "ca.crt"

    def bin(self, name: str) -> Path:
        return binaries.binary(name, self.versions)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float | None = None) -> None:
        """Start every component and return once nodes are Ready and controllers are working."""
        # A real node pushes its images and starts a kubelet: minutes on a cold machine.
        timeout = timeout or (900.0 if self.node else 180.0)
        deadline = time.monotonic() + timeout
        needed = ["etcd", "kube-apiserver", "kwok"] + (list(node.BINARIES) if self.node else [])
        for name in needed:
            self.bin(name)  # build anything missing before starting anything
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.token = secrets.token_urlsafe(32)
        try:
            if self.node:
                self.node.prepare_host()
            self._write_state()
            make_pki(self.pki, self.host_address)
            self._start_etcd(deadline)
            self._start_apiserver(deadline)
            self._start_controllers(deadline)
            self.create_nodes(self.nodes)
            self.wait_nodes_ready(deadline)
            self._wait_controller_manager(deadline)
            if self.node:
                self.node.start(deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop exactly the processes this cluster started, newest first; then remove what a
        real node left on the host (containers, mounts, interfaces, netfilter tables)."""
        for proc in reversed(self.procs):
            proc.stop()
        for popen in self._popens:
            popen.poll()
        self.procs.clear()
        self._popens.clear()
        if self.node and (problems := node.cleanup(self.workdir)):
            raise ClusterError("the real node left: " + "; ".join(problems))
        self._write_state()

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state shared between `make cluster-up` and `make cluster-down` ----------------------
    def _write_state(self) -> None:
        state = {
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "real_node": self.node is not None,
            "procs": [vars(p) for p in self.procs],
        }
        (self.workdir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @staticmethod
    def read_state(workdir: Path) -> list[Proc]:
        try:
            state = json.loads((workdir / STATE_FILE).read_text())
        except FileNotFoundError:
            return []
        return [Proc(**p) for p in state["procs"]]

    # -- components --------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        log = self.workdir / "logs" / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ, **(env or {})},
                # Detached: a new session, so Ctrl-C in the terminal that ran `make cluster-up`
                # does not reach the cluster; `cluster-down` stops it by pid instead.
                start_new_session=self.detach,
                preexec_fn=None if self.detach else _die_with_parent,
            )
        self._popens.append(popen)
        start_time = _proc_start_time(popen.pid)
        if start_time is None:
            raise ClusterError(f"{name} exited at once; see {log}")
        proc = Proc(name=name, pid=popen.pid, start_time=start_time, log=str(log))
        self.procs.append(proc)
        self._write_state()
        return proc

    def _start_etcd(self, deadline: float) -> None:
        client, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{client}"
        self.etcd_url = url
        proc = self._spawn(
            "etcd",
            [
                str(self.bin("etcd")),
                "--name=modeldeploy-local",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=modeldeploy-local=http://127.0.0.1:{peer}",
                # Test data is thrown away; fsync only costs time.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait(proc, deadline, lambda: _http_ok(f"{url}/health"))

    def _start_apiserver(self, deadline: float) -> None:
        port = free_port()
        self.server = f"https://{self.host_address}:{port}"
        tokens = self.workdir / "tokens.csv"
        # The harness's own identity: an admin in system:masters, so RBAC can stay on; a real
        # node adds the kubelet's and kube-proxy's.
        lines = [f"{self.token},admin,admin-uid,system:masters"]
        lines += self.node.token_lines() if self.node else []
        tokens.write_text("\n".join(lines) + "\n")
        tokens.chmod(0o600)
        pki = self.pki
        proc = self._spawn(
            "kube-apiserver",
            [
                str(self.bin("kube-apiserver")),
                f"--etcd-servers={self.etcd_url}",
                f"--bind-address={self.host_address}",
                f"--advertise-address={self.host_address}",
                f"--secure-port={port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'serving.crt'}",
                f"--tls-private-key-file={pki / 'serving.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'kubelet-client.key'}",
                # A node's name resolves nowhere (no DNS may be asked outside): use its address.
                "--kubelet-preferred-address-types=InternalIP",
                "--authorization-mode=Node,RBAC",
                f"--token-auth-file={tokens}",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={pki / 'sa.key'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )
        self.kubeconfig.write_text(kubeconfig_text(self.server, pki / "ca.crt", self.token))
        self.kubeconfig.chmod(0o600)
        self._wait(proc, deadline, lambda: self._api_ok("/readyz"))

    def restart_apiserver(self, timeout: float = 120.0) -> None:
        """Stop kube-apiserver and start it again on the same port with the same etcd, keys and
        flags, as a control-plane upgrade or a crash does; return once it is ready again.

        Every client (controllers, kwok, operators, tests) keeps its address and credentials;
        what it sees is its connections and watches cut while the apiserver is away.
        """
        old = next(p for p in self.procs if p.name == "kube-apiserver")
        # The running process's own command line: the same binary, port, etcd and flags.
        args = Path(f"/proc/{old.pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
        old.stop()
        proc = self._spawn("kube-apiserver", args)
        # Back in the old one's place: components stop in reverse start order, and the
        # controllers must go before the apiserver they talk to.
        self.procs.remove(proc)
        self.procs[self.procs.index(old)] = proc
        self._write_state()
        self._wait(proc, time.monotonic() + timeout, lambda: self._api_ok("/readyz"))

    def _start_controllers(self, deadline: float) -> None:
        kubeconfig = str(self.kubeconfig)
        cm_port, sched_port = free_port(), free_port()
        cm = self._spawn(
            "kube-controller-manager",
            [
                str(self.bin("kube-controller-manager")),
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={cm_port}",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.pki / 'ca.crt'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--v=1",
            ],
        )
        sched = self._spawn(
            "kube-scheduler",
            [
                str(self.bin("kube-scheduler")),
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                "--v=1",
            ],
        )
        kwok_dir = self.bin("kwok").parent
        self._spawn(
            "kwok",
            [
                str(self.bin("kwok")),
                f"--kubeconfig={kubeconfig}",
                f"--config={kwok_dir / binaries.KWOK_STAGES_FILE}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={'='.join(KWOK_ANNOTATION)}",
                "--node-lease-duration-seconds=40",
            ],
            # kwok also reads ~/.kwok/kwok.yaml when it exists; a private HOME keeps a person's
            # own kwok configuration out of the tests.
            env={"HOME": str(self.workdir)},
        )
        self._wait(cm, deadline, lambda: _http_ok(f"https://127.0.0.1:{cm_port}/healthz"))
        self._wait(sched, deadline, lambda: _http_ok(f"https://127.0.0.1:{sched_port}/healthz"))

    def _wait_controller_manager(self, deadline: float) -> None:
        """Healthz says little: wait until its controllers act (the default ServiceAccount)."""
        cm = next(p for p in self.procs if p.name == "kube-controller-manager")
        default_sa = "/api/v1/namespaces/default/serviceaccounts/default"
        self._wait(cm, deadline, lambda: self._api_ok(default_sa))

    def _wait(self, proc: Proc, deadline: float, ready: Callable[[], bool]) -> None:
        while not ready():
            if not proc.alive():
                raise ClusterError(f"{proc.name} exited while starting; see {proc.log}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{proc.name} not ready in time; see {proc.log}")
            time.sleep(0.2)

    # -- API access (stdlib; tests use kubectl or the kubernetes client) ---------------------
    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
        """One authenticated request as the admin; returns the raw response body."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, context=self._ssl(), timeout=10) as resp:
            return bytes(resp.read())

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Like `request`, for the JSON API paths."""
        return json.loads(self.request(method, path, body) or b"null")

    def _api_ok(self, path: str) -> bool:
        try:
            self.request("GET", path)
        except OSError:  # URLError and HTTPError are OSErrors
            return False
        return True

    def create_nodes(self, nodes: Sequence[FakeNode]) -> None:
        for fake in nodes:
            self.api("POST", "/api/v1/nodes", fake.manifest())

    def wait_nodes_ready(self, deadline: float) -> None:
        """Ready (kwok's heartbeat) and untainted (the node lifecycle controller caught up)."""
        kwok = next(p for p in self.procs if p.name == "kwok")
        names = {n.name for n in self.nodes}
        self._wait(kwok, deadline, lambda: names <= self._ready_nodes())

    def _ready_nodes(self) -> set[str]:
        ready = set()
        for item in self.api("GET", "/api/v1/nodes")["items"]:
            conditions = {c["type"]: c["status"] for c in item["status"].get("conditions", [])}
            if conditions.get("Ready") == "True" and not item["spec"].get("taints"):
                ready.add(item["metadata"]["name"])
        return ready

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the cluster's own kubectl against it."""
        # A discovery cache per cluster: the default ~/.kube/cache is keyed by host:port, and a
        # later cluster on the same port would be served stale API groups.
        cache = f"--cache-dir={self.workdir / 'kube-cache'}"
        command = [str(self.bin("kubectl")), f"--kubeconfig={self.kubeconfig}", cache, *args]
        return _run(command, input, check)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run helm against the cluster, with its caches kept inside the cluster's folder."""
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.workdir / "kube-cache"),
            "HELM_CACHE_HOME": str(self.workdir / "helm" / "cache"),
            "HELM_CONFIG_HOME": str(self.workdir / "helm" / "config"),
            "HELM_DATA_HOME": str(self.workdir / "helm" / "data"),
        }
        return _run([str(self.bin("helm")), *args], None, check, env)


def _http_ok(url: str) -> bool:
    """GET without credentials; local self-signed serving certificates are not verified."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, context=context, timeout=5) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def running(
    nodes: Sequence[FakeNode] = DEFAULT_NODES, real_node: bool = False
) -> Iterator[LocalCluster]:
    """A cluster in a fresh temp folder, removed with it."""
    workdir = Path(tempfile.mkdtemp(prefix="modeldeploy-cluster-"))
    try:
        with LocalCluster(workdir, nodes, real_node=real_node) as cluster:
            yield cluster
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# -- make cluster-up / cluster-down ----------------------------------------------------------
def cluster_up(state_dir: Path, real_node: bool = False) -> int:
    procs = LocalCluster.read_state(state_dir)
    if procs and all(p.alive() for p in procs):
        print(f"cluster already running; export KUBECONFIG={state_dir / 'kubeconfig'}")
        return 0
    cluster_down(state_dir, quiet=True)  # a half-dead earlier cluster: stop what is left
    started = time.monotonic()
    # With a real node, pods run there: no fake node for them to land on instead.
    fake = () if real_node else DEFAULT_NODES
    cluster = LocalCluster(state_dir, fake, detach=True, real_node=real_node)
    cluster.start()
    took = time.monotonic() - started
    print(f"cluster up in {took:.0f}s (logs: {state_dir / 'logs'}); to use it:", file=sys.stderr)
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


def cluster_down(state_dir: Path, quiet: bool = False) -> int:
    procs = LocalCluster.read_state(state_dir)
    for proc in reversed(procs):
        proc.stop()
    if node.Layout(state_dir).root.exists() and (problems := node.cleanup(state_dir)):
        print("ERROR: the real node left: " + "; ".join(problems), file=sys.stderr)
        return 1
    if state_dir.exists():
        shutil.rmtree(state_dir)
    if not quiet:
        print(f"stopped {len(procs)} process(es) recorded in {state_dir}")
    return 0


def cluster_status(state_dir: Path) -> int:
    procs = LocalCluster.read_state(state_dir)
    if not procs:
        print(f"no cluster recorded in {state_dir}")
    for proc in procs:
        print(f"{proc.name:<24} pid {proc.pid:<8} {'running' if proc.alive() else 'stopped'}")
    return 0 if procs and all(p.alive() for p in procs) else 1


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("state_dir", type=Path)
    parser.add_argument(
        "--node",
        choices=["fake", "real"],
        default="fake",
        help="real: also a kubelet node running containers (containerd, CNI, kube-proxy)",
    )
    args = parser.parse_args(argv)
    state_dir = args.state_dir.resolve()
    try:
        if args.command == "up":
            return cluster_up(state_dir, real_node=args.node == "real")
        return {"down": cluster_down, "status": cluster_status}[args.command](state_dir)
    except (ClusterError, binaries.BuildError, node.NodeError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
