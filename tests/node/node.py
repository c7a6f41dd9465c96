"""A real Kubernetes node beside the test control plane: containerd, kubelet and kube-scheduler.

``RealNode`` owns everything a node changes on this machine and undoes it when the
tier ends: a machine-wide lock (the kubelet's fixed paths allow one node per
machine), a bridge with an address of the test's own (pods reach only that
bridge's addresses; no other address is ever dialled), the sysctls the kubelet
changes (read before, restored after), containerd's and the kubelet's state
under one directory, their mounts, the ``kubepods`` cgroups, the iptables chains
the kubelet makes. ``tests/node/README.md`` says why each setting is what it is.
Used by ``tests/node/conftest.py``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import yaml

from tests.e2e import certs
from tests.e2e.cluster import ControlPlane, ManagedProcess, write_kubeconfig
from tests.e2e.waiting import wait_for

from . import images

NODE_NAME = "baselinr-node"
BRIDGE = "blr-node0"
#: The bridge's subnet: the bridge holds .1 (the node, the API server, the databases), pods get .16-.250.
SUBNET = "10.213.47.0/24"
ADDRESS = "10.213.47.1"
BRIDGE_MAC = "02:42:0a:d5:2f:01"  # fixed: see Bridge.create
CNI_NETWORK = "baselinr-node"
LOCK_FILE = Path("/run/lock/baselinr-test-node.lock")
#: The kubelet sets these (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops).
SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
#: Fixed paths the kubelet and the CNI plugins create whatever their settings say.
FIXED_PATHS = (
    Path("/var/lib/kubelet"),
    Path("/var/log/containers"),
    Path("/var/log/pods"),
    Path("/var/lib/cni"),
    Path("/run/containerd"),
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
IPTABLES_TABLES = ("filter", "nat", "mangle")
RUNC = "/usr/sbin/runc"
CNI_BIN = "/usr/lib/cni"


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


class NodeLock:
    """The one-node-per-machine lock, waited for with a bound."""

    def __init__(self, path: Path = LOCK_FILE) -> None:
        self.path = path
        self.handle: IO[str] | None = None

    def acquire(self, timeout: float = 20 * 60) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.close()
                    raise RuntimeError(f"another real node holds {self.path} for more than {timeout:.0f}s") from None
                time.sleep(1)
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


class Bridge:
    """The test's own bridge and address: the node IP, where the API server and databases listen."""

    def __init__(self, name: str = BRIDGE, address: str = ADDRESS, subnet: str = SUBNET) -> None:
        self.name, self.address, self.subnet = name, address, subnet
        self.created = False

    def create(self) -> None:
        if Path(f"/sys/class/net/{self.name}").exists():
            raise RuntimeError(f"network interface {self.name} exists already: a node tier that did not clean up?")
        prefix = self.subnet.split("/")[1]
        _sh("ip", "link", "add", self.name, "type", "bridge")
        self.created = True
        # A bridge without an address of its own takes the lowest MAC of its ports, so it changes as pods come
        # and go; pods that cached the old one (ARP) then cannot reach the databases for a while ("timeout
        # expired" connecting, seen when a rolling update replaced the operator's pods). A fixed, locally
        # administered MAC stays.
        _sh("ip", "link", "set", "dev", self.name, "address", BRIDGE_MAC)
        _sh("ip", "addr", "add", f"{self.address}/{prefix}", "dev", self.name)
        _sh("ip", "link", "set", self.name, "up")

    def delete(self) -> None:
        if self.created:
            _sh("ip", "link", "delete", self.name, check=False)
            self.created = False


class RealNode:
    """containerd + kubelet + kube-scheduler registered as ``NODE_NAME`` with ``control_plane``."""

    def __init__(self, node_bin: Path, control_plane: ControlPlane, state: Path, bridge: Bridge) -> None:
        self.node_bin = node_bin
        self.control_plane = control_plane
        self.state = state
        self.bridge = bridge
        self.logs = control_plane.work_dir / "logs"
        self.socket = state / "containerd" / "containerd.sock"
        self.processes: list[ManagedProcess] = []
        self.sysctls: dict[str, str] = {}
        self.existing_paths = {p for p in FIXED_PATHS if p.exists()}
        # What was there before this node: left alone by the teardown.
        self.existing_cgroups = {c for c in CGROUP_ROOT.iterdir() if (c / "kubepods").is_dir()} if CGROUP_ROOT.is_dir() else set()
        self.existing_rules = {table: self._kube_rules(table) for table in IPTABLES_TABLES}
        self.timings: dict[str, float] = {}

    @property
    def ctr(self) -> list[str]:
        return ["ctr", "--address", str(self.socket)]

    # -- lifecycle ---------------------------------------------------------

    def container_pid(self, container_id: str) -> int:
        """The host PID of a running container's first process (``containerd://<id>`` or the bare id)."""
        wanted = container_id.split("://", 1)[-1]
        listing = _sh(*self.ctr, "-n", "k8s.io", "tasks", "ls").stdout
        for line in listing.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 2 and fields[0] == wanted:
                return int(fields[1])
        raise LookupError(f"no running task {wanted} in containerd:\n{listing}")

    def start(self) -> None:
        for name in SYSCTLS:
            self.sysctls[name] = (Path("/proc/sys") / name).read_text().strip()
        self.state.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self._start_containerd()
        self.timings["containerd"] = time.monotonic() - started

        started = time.monotonic()
        work = self.state / "images"
        work.mkdir()
        images.import_archive(self.ctr, images.build_pause(work))
        self.timings["pause image"] = time.monotonic() - started
        started = time.monotonic()
        images.import_archive(self.ctr, images.build_ours(work, self.logs / "build-image.log"))
        self.timings["our image"] = time.monotonic() - started

        started = time.monotonic()
        self._start_kubelet()
        self._start_scheduler()
        self.timings["kubelet to Ready"] = time.monotonic() - started

    def stop(self) -> None:
        """Stop everything and put the machine back as it was (best effort, each step on its own)."""
        steps = [
            ("stop the scheduler and the kubelet", self._stop_node_processes),
            ("remove the containers", self._remove_containers),
            ("stop containerd", self._stop_containerd),
            ("unmount", self._unmount),
            ("remove the kubepods cgroups", self._remove_cgroups),
            ("remove the kubelet's iptables chains", self._remove_iptables_chains),
            ("restore the sysctls", self._restore_sysctls),
            ("remove the state", self._remove_state),
        ]
        errors = []
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - teardown goes on; the errors are reported at the end
                errors.append(f"{what}: {exc}")
        if errors:
            raise RuntimeError("the real node's teardown left work undone:\n" + "\n".join(errors))

    # -- containerd --------------------------------------------------------

    def _containerd_config(self) -> str:
        c = self.state / "containerd"
        return f"""version = 2
root = "{c / "root"}"
state = "{c / "state"}"
oom_score = 0

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{c / "opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  netns_mounts_under_state_dir = true

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "{RUNC}"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{c / "cni"}"
"""

    def _cni_conflist(self) -> dict[str, Any]:
        base = self.bridge.subnet.rsplit(".", 1)[0]
        return {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge.name,
                    "isGateway": False,
                    "isDefaultGateway": False,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.bridge.subnet, "rangeStart": f"{base}.16", "rangeEnd": f"{base}.250"}]],
                        "dataDir": str(self.state / "cni-ipam"),
                    },
                }
            ],
        }

    def _start_containerd(self) -> None:
        c = self.state / "containerd"
        (c / "cni").mkdir(parents=True)
        (c / "cni" / "10-baselinr-node.conflist").write_text(json.dumps(self._cni_conflist(), indent=2))
        config = c / "config.toml"
        config.write_text(self._containerd_config())
        process = self._spawn("containerd", ["containerd", "--config", str(config)])
        wait_for(
            lambda: self._alive(process) and self.socket.exists() and _sh(*self.ctr, "version", check=False).returncode == 0,
            timeout=60,
            what="containerd to answer on its socket",
        )

    def _stop_containerd(self) -> None:
        for process in [p for p in self.processes if p.name == "containerd"]:
            process.stop()
        # The shims outlive containerd (their own sessions): stop those of this node's socket.
        for pid in self._shim_pids():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def _shim_pids(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and str(self.socket).encode() in cmdline:
                pids.append(int(entry.name))
        return pids

    def _remove_containers(self) -> None:
        if not self.socket.exists():
            return
        ns = [*self.ctr, "-n", "k8s.io"]
        tasks = _sh(*ns, "tasks", "list", "-q", check=False).stdout.split()
        for task in tasks:
            _sh(*ns, "tasks", "kill", "-s", "SIGKILL", task, check=False)
        for task in tasks:
            _sh(*ns, "tasks", "delete", "-f", task, check=False)
        for container in _sh(*ns, "containers", "list", "-q", check=False).stdout.split():
            _sh(*ns, "containers", "delete", container, check=False)

    # -- kubelet and scheduler ---------------------------------------------

    def _start_kubelet(self) -> None:
        cp = self.control_plane
        assert cp.certs is not None
        k = self.state / "kubelet"
        k.mkdir()
        pair = certs.issue_client(cp.certs, "kubelet", common_name=f"system:node:{NODE_NAME}", organization="system:nodes")
        kubeconfig = k / "kubelet.kubeconfig"
        write_kubeconfig(
            kubeconfig, server=cp.server, ca=cp.certs.ca.cert, cert=pair.cert, key=pair.key, user=f"system:node:{NODE_NAME}"
        )
        endpoint = f"unix://{self.socket}"
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "containerRuntimeEndpoint": endpoint,
            "imageServiceEndpoint": endpoint,
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "failSwapOn": False,
            "oomScoreAdj": 0,
            "protectKernelDefaults": False,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "address": self.bridge.address,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(cp.certs.ca.cert)},
            },
            "authorization": {"mode": "Webhook"},
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "podLogsDir": str(k / "pod-logs"),
            "volumePluginDir": str(k / "volume-plugins"),
            "clusterDomain": "cluster.local",
            "resolvConf": "",
            "registerNode": True,
            "syncFrequency": "5s",
            "fileCheckFrequency": "5s",
            "nodeStatusUpdateFrequency": "5s",
            "staticPodPath": "",
        }
        config_file = k / "config.yaml"
        config_file.write_text(yaml.safe_dump(config))
        process = self._spawn(
            "kubelet",
            [
                str(self.node_bin / "kubelet"),
                f"--config={config_file}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={k / 'root'}",
                f"--cert-dir={k / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.bridge.address}",
                "--v=1",
            ],
        )
        wait_for(
            lambda: self._alive(process) and self._node_ready(), timeout=120, what=f"kubelet to register Ready node {NODE_NAME}"
        )

    def _start_scheduler(self) -> None:
        cp = self.control_plane
        assert cp.certs is not None
        pair = certs.issue_client(cp.certs, "scheduler", common_name="system:kube-scheduler")
        kubeconfig = self.state / "scheduler.kubeconfig"
        write_kubeconfig(
            kubeconfig, server=cp.server, ca=cp.certs.ca.cert, cert=pair.cert, key=pair.key, user="system:kube-scheduler"
        )
        process = self._spawn(
            "kube-scheduler",
            [
                str(self.node_bin / "kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                "--v=1",
            ],
        )
        time.sleep(0.5)
        self._alive(process)

    def _stop_node_processes(self) -> None:
        for process in reversed(self.processes):
            if process.name in ("kube-scheduler", "kubelet"):
                process.stop()

    def _node_ready(self) -> bool:
        node = self.control_plane._get_json(f"/api/v1/nodes/{NODE_NAME}")
        if not node:
            return False
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in node.get("status", {}).get("conditions", []))
        untainted = not any(t.get("key") == "node.kubernetes.io/not-ready" for t in node.get("spec", {}).get("taints") or [])
        return ready and untainted

    # -- cleanup -----------------------------------------------------------

    def _unmount(self) -> None:
        roots = [str(self.state), *(str(p) for p in FIXED_PATHS if p not in self.existing_paths)]
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        ours = [m for m in mounts if any(m == r or m.startswith(r + "/") for r in roots)]
        for mount in sorted(ours, key=len, reverse=True):
            _sh("umount", "-l", mount, check=False)

    def _remove_cgroups(self) -> None:
        for controller in CGROUP_ROOT.iterdir():
            tree = controller / "kubepods"
            if not tree.is_dir() or tree.is_symlink() or controller in self.existing_cgroups:
                continue
            for path in sorted((p for p in tree.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                try:
                    path.rmdir()
                except OSError:
                    pass
            try:
                tree.rmdir()
            except OSError:
                pass

    @staticmethod
    def _kube_rules(table: str) -> set[str]:
        """The ``KUBE-*`` chains (``-N``) and the rules that mention them (``-A``) of one iptables table."""
        listing = _sh("iptables", "-t", table, "-S", check=False).stdout.splitlines()
        return {line for line in listing if "KUBE-" in line and line.startswith(("-N ", "-A "))}

    def _remove_iptables_chains(self) -> None:
        for table in IPTABLES_TABLES:
            made = self._kube_rules(table) - self.existing_rules.get(table, set())
            for rule in (line for line in made if line.startswith("-A ")):
                _sh("iptables", "-t", table, *("-D " + rule[3:]).split(), check=False)
            chains = [line.split()[1] for line in made if line.startswith("-N ")]
            for chain in chains:
                _sh("iptables", "-t", table, "-F", chain, check=False)
            for chain in chains:
                _sh("iptables", "-t", table, "-X", chain, check=False)

    def _restore_sysctls(self) -> None:
        for name, value in self.sysctls.items():
            path = Path("/proc/sys") / name
            if path.read_text().strip() != value:
                path.write_text(value)

    def _remove_state(self) -> None:
        shutil.rmtree(self.state, ignore_errors=True)
        # containerd's CNI result cache, in a fixed place: this network's entries and their loopbacks.
        results = Path("/var/lib/cni/results")
        for entry in results.glob(f"{CNI_NETWORK}-*"):
            sandbox = entry.name[len(CNI_NETWORK) + 1 :].rsplit("-", 1)[0]
            entry.unlink(missing_ok=True)
            (results / f"cni-loopback-{sandbox}-lo").unlink(missing_ok=True)
        for path in FIXED_PATHS:
            if path not in self.existing_paths:
                shutil.rmtree(path, ignore_errors=True)

    # -- helpers -----------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.logs / f"{name}.log")
        self.processes.append(process)
        process.start()
        return process

    @staticmethod
    def _alive(process: ManagedProcess) -> bool:
        if not process.running():
            code = process.proc.returncode if process.proc else None
            raise RuntimeError(f"{process.name} exited with code {code}; log tail:\n{process.tail()}")
        return True
