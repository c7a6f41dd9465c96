"""Local Kubernetes control plane for the end-to-end tests.

Starts etcd, kube-apiserver, kube-controller-manager and the test node agent
(``node_agent.py``) as child processes on free loopback ports, writes an
administrator kubeconfig, and stops them again by process group id. The
binaries come from ``controlplane/build.sh``, which builds them once per
machine from the Go module proxy and caches them outside the repository.

:class:`Cluster` is what the tests see: a kubeconfig, the server URL, a
``kubectl`` helper and a factory for ``kubernetes`` Python API clients. It
either wraps a :class:`ControlPlane` started here or an existing cluster
given by a kubeconfig (for example a kind cluster).
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from . import certs
from .waiting import wait_for

E2E_DIR = Path(__file__).resolve().parent
BUILD_SCRIPT = E2E_DIR / "controlplane" / "build.sh"
NODE_AGENT = E2E_DIR / "node_agent.py"
NODE_NAME = "e2e-node"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
#: pytest-timeout limit for the test that builds the binaries (first run on a machine).
BUILD_TIMEOUT = 45 * 60

#: Controllers run by kube-controller-manager; enough for Jobs, garbage
#: collection, namespace deletion and service accounts.
CONTROLLERS = (
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "replicaset-controller",
    "deployment-controller",
)
#: Further controllers for a real node (``tests/node``): the node lifecycle controller removes
#: the not-ready taint (else pods stay Pending), the binder binds PVCs to PersistentVolumes.
NODE_CONTROLLERS = ("node-lifecycle-controller", "persistentvolume-binder-controller")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL if the spawning thread dies.

    A safety net for a test run that is itself killed with SIGKILL; normal
    shutdown stops every process explicitly.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: rely on explicit stop
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cached_binaries() -> Path | None:
    """The binary directory if this machine already built the binaries, else None."""
    proc = subprocess.run(["bash", str(BUILD_SCRIPT), "--print-dir"], capture_output=True, text=True, check=True)
    bin_dir = Path(proc.stdout.strip())
    complete = (bin_dir.parent / ".complete").exists()
    return bin_dir if complete and all((bin_dir / b).exists() for b in BINARIES) else None


def ensure_binaries(stream: IO[str] | None = None) -> Path:
    """Return the directory of the control plane binaries, building them if needed.

    Progress of a build goes to ``stream`` (default: standard error).
    """
    out = stream if stream is not None else sys.stderr
    with subprocess.Popen(
        ["bash", str(BUILD_SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:
            out.write(line)
            out.flush()
        stdout = proc.stdout.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT} failed with exit code {proc.returncode}")
    return Path(stdout.strip().splitlines()[-1])


@dataclass
class ManagedProcess:
    """One child process in its own process group, with its output in a log file."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env=self.env,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it lingers."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the pid
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; make sure nothing else is left in its group.
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<cannot read {self.log_path}: {exc}>"
        return "\n".join(text.splitlines()[-lines:])

    def rss_kib(self) -> int:
        """Resident set size of the process, from /proc (0 if unknown)."""
        if not self.running() or self.pid is None:
            return 0
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0


def write_kubeconfig(path: Path, *, server: str, ca: Path, cert: Path, key: Path, user: str, namespace: str = "default") -> None:
    """Write a kubeconfig with the certificates embedded, so it is self-contained."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user, "namespace": namespace}}],
        "current-context": "e2e",
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager (+ node agent) on loopback.

    With ``address`` (the real node tier's bridge address), the API server listens there
    instead, so that pods can reach it, authorizes kubelets (``Node,RBAC``,
    ``NodeRestriction``), reaches them with a client certificate, and the controller manager
    also runs :data:`NODE_CONTROLLERS`; no node agent is started then.
    """

    def __init__(self, bin_dir: Path, work_dir: Path, *, node_agent: bool = True, address: str | None = None) -> None:
        self.bin_dir = bin_dir
        self.work_dir = work_dir
        self.real_node = address is not None
        self.node_agent = node_agent and not self.real_node
        self.address = address or "127.0.0.1"
        self.processes: list[ManagedProcess] = []
        self.kubeconfig = work_dir / "admin.kubeconfig"
        self.etcd_port = free_port()
        self.apiserver_port = free_port()
        self.server = f"https://{self.address}:{self.apiserver_port}"
        self.certs: certs.ClusterCerts | None = None
        self.startup_seconds = 0.0

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        started = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def _start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        logs = self.work_dir / "logs"
        logs.mkdir(exist_ok=True)
        pki = certs.generate(self.work_dir / "pki", extra_ips=(self.address,) if self.real_node else ())
        self.certs = pki
        write_kubeconfig(
            self.kubeconfig,
            server=self.server,
            ca=pki.ca.cert,
            cert=pki.admin.cert,
            key=pki.admin.key,
            user="e2e-admin",
        )
        cm_kubeconfig = self.work_dir / "controller-manager.kubeconfig"
        write_kubeconfig(
            cm_kubeconfig,
            server=self.server,
            ca=pki.ca.cert,
            cert=pki.controller_manager.cert,
            key=pki.controller_manager.key,
            user="system:kube-controller-manager",
        )

        etcd = self._spawn("etcd", self._etcd_argv(), logs)
        wait_for(
            lambda: self._check_alive(etcd) and self._etcd_healthy(),
            timeout=30,
            what="etcd /health",
        )

        apiserver = self._spawn("kube-apiserver", self._apiserver_argv(pki), logs)
        wait_for(
            lambda: self._check_alive(apiserver) and self._get("/readyz") == b"ok",
            timeout=90,
            what="kube-apiserver /readyz",
        )

        cm = self._spawn("kube-controller-manager", self._controller_manager_argv(pki, cm_kubeconfig), logs)
        # The service account controller creates "default" in every namespace:
        # once it exists, the controllers are running.
        wait_for(
            lambda: self._check_alive(cm) and self._get_json("/api/v1/namespaces/default/serviceaccounts/default"),
            timeout=90,
            what="kube-controller-manager (default service account)",
        )

        if self.node_agent:
            self.start_node_agent()

    def start_node_agent(self) -> None:
        """Start the node agent and wait for its Ready node (``start`` does it unless ``node_agent=False``)."""
        assert self.certs is not None, "the control plane is started first"
        agent = self._spawn(
            "node-agent",
            [
                sys.executable,
                str(NODE_AGENT),
                "--kubeconfig",
                str(self.kubeconfig),
                "--node-name",
                NODE_NAME,
                "--root",
                str(self.work_dir / "node"),
                "--log-cert",
                str(self.certs.serving.cert),
                "--log-key",
                str(self.certs.serving.key),
            ],
            self.work_dir / "logs",
        )
        wait_for(
            lambda: self._check_alive(agent) and self._node_ready(),
            timeout=60,
            what=f"node agent to register Ready node {NODE_NAME}",
        )

    def stop(self) -> None:
        """Stop all processes, newest first."""
        for process in reversed(self.processes):
            process.stop()

    # -- helpers -----------------------------------------------------------

    def _spawn(self, name: str, argv: Sequence[str], logs: Path) -> ManagedProcess:
        process = ManagedProcess(name, list(argv), logs / f"{name}.log")
        self.processes.append(process)
        process.start()
        return process

    @staticmethod
    def _check_alive(process: ManagedProcess) -> bool:
        if not process.running():
            code = process.proc.returncode if process.proc else None
            raise RuntimeError(f"{process.name} exited with code {code}; log tail:\n{process.tail()}")
        return True

    def _etcd_argv(self) -> list[str]:
        peer = f"http://127.0.0.1:{free_port()}"
        client = f"http://127.0.0.1:{self.etcd_port}"
        return [
            str(self.bin_dir / "etcd"),
            "--name=e2e",
            f"--data-dir={self.work_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=e2e={peer}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync",  # throw-away data: skip fsync for speed
            "--log-level=warn",
        ]

    def _apiserver_argv(self, pki: certs.ClusterCerts) -> list[str]:
        if self.real_node:
            kubelet_client = certs.issue_client(
                pki, "apiserver-kubelet-client", common_name="kube-apiserver-kubelet-client", organization="system:masters"
            )
            node_args = [
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
            ]
        else:
            node_args = ["--authorization-mode=RBAC"]
        return [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--secure-port={self.apiserver_port}",
            f"--tls-cert-file={pki.serving.cert}",
            f"--tls-private-key-file={pki.serving.key}",
            f"--client-ca-file={pki.ca.cert}",
            f"--cert-dir={self.work_dir / 'apiserver-certs'}",
            *node_args,
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--kubelet-preferred-address-types=InternalIP",  # the node agent's log endpoint, on 127.0.0.1
            "--profiling=false",
            "--v=1",
        ]

    def _controller_manager_argv(self, pki: certs.ClusterCerts, kubeconfig: Path) -> list[str]:
        return [
            str(self.bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--controllers={','.join(CONTROLLERS + (NODE_CONTROLLERS if self.real_node else ()))}",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca.cert}",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            "--secure-port=0",
            "--kube-api-qps=100",
            "--kube-api-burst=200",
            "--concurrent-gc-syncs=5",
            "--v=1",
        ]

    def _ssl_context(self) -> ssl.SSLContext:
        assert self.certs is not None
        ctx = ssl.create_default_context(cafile=str(self.certs.ca.cert))
        ctx.load_cert_chain(str(self.certs.admin.cert), str(self.certs.admin.key))
        return ctx

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(self.server + path, context=self._ssl_context(), timeout=5) as resp:
                body: bytes = resp.read()
                return body
        except (urllib.error.URLError, OSError):
            return None

    def _get_json(self, path: str) -> Any:
        body = self._get(path)
        return json.loads(body) if body else None

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health", timeout=5) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _node_ready(self) -> bool:
        node = self._get_json(f"/api/v1/nodes/{NODE_NAME}")
        if not node:
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def memory_report(self) -> dict[str, int]:
        """RSS in KiB of each running process, by name."""
        return {p.name: p.rss_kib() for p in self.processes}


class Cluster:
    """What the tests use: a kubeconfig plus helpers, for a local or an existing cluster."""

    def __init__(self, kubeconfig: Path, *, kubectl: str, control_plane: ControlPlane | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl_bin = kubectl
        self.control_plane = control_plane
        self.server = self._read_server(kubeconfig)

    @staticmethod
    def _read_server(kubeconfig: Path) -> str:
        config = yaml.safe_load(kubeconfig.read_text())
        contexts = {c["name"]: c["context"] for c in config.get("contexts", [])}
        clusters = {c["name"]: c["cluster"] for c in config.get("clusters", [])}
        context = contexts[config["current-context"]]
        server: str = clusters[context["cluster"]]["server"]
        return server

    @property
    def local(self) -> bool:
        """True when the control plane (and the node agent) were started by the tests."""
        return self.control_plane is not None

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = False, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster and return the completed process."""
        proc = subprocess.run(
            [self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def get_json(self, *args: str) -> Any:
        """``kubectl get ARGS -o json``, parsed; None if the object does not exist."""
        proc = self.kubectl("get", *args, "-o", "json")
        if proc.returncode != 0:
            if "NotFound" in proc.stderr:
                return None
            raise AssertionError(f"kubectl get {' '.join(args)} failed: {proc.stderr}")
        return json.loads(proc.stdout)

    def apply(self, manifest: str, namespace: str | None = None) -> subprocess.CompletedProcess[str]:
        """``kubectl apply -f -`` with ``manifest`` (YAML or JSON text) on standard input."""
        ns = ["-n", namespace] if namespace else []
        return self.kubectl("apply", *ns, "-f", "-", input=manifest)

    def api_client(self) -> Any:
        """A new ``kubernetes.client.ApiClient`` for this cluster (usable as a context manager)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]


def find_kubectl(bin_dir: Path | None) -> str:
    """The kubectl to use: the built one if there is one, else the one on PATH."""
    if bin_dir is not None and (bin_dir / "kubectl").exists():
        return str(bin_dir / "kubectl")
    found = shutil.which("kubectl")
    if found:
        return found
    return str(ensure_binaries() / "kubectl")
