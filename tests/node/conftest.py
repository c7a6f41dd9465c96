"""Fixtures of the real node tier: the control plane with a real kubelet beside it.

``node_network`` takes the one-node-per-machine lock and creates the test's bridge;
``pg_server`` and ``mysql_server`` (overriding the suite's) also listen on the bridge address, where pods
reach it; ``k8s`` (session) starts the control plane on the bridge address and a
``RealNode`` (containerd, kubelet, kube-scheduler, both images imported) and tears
all of it down at the end. When a test fails, the tail of every log is added to its
report. See ``tests/node/README.md``.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import re
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import BUILD_SCRIPT, BUILD_TIMEOUT, Cluster, ControlPlane, ensure_binaries
from tests.e2e.waiting import wait_for
from tests.support.servers import Server, start_mariadb, start_postgres

from .chart import Installed, assert_no_traceback, install_operator, local_volume
from .node import Bridge, NodeLock, RealNode

_NODE = pytest.StashKey[RealNode]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The first test of the tier also builds the images (and, on a machine's first run, the binaries)."""
    here = Path(__file__).parent
    ours = [item for item in items if here in Path(str(item.path)).parents]
    if ours and config.pluginmanager.hasplugin("timeout"):
        ours[0].add_marker(pytest.mark.timeout(BUILD_TIMEOUT))


def node_binaries() -> Path:
    """kubelet and kube-scheduler: ``build.sh --node`` (built once per machine, then cached)."""
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--node"], stdout=subprocess.PIPE, stderr=sys.stderr, text=True, timeout=1800
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT} --node failed with exit code {proc.returncode}")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def node_network() -> Iterator[Bridge]:
    lock = NodeLock()
    lock.acquire()
    bridge = Bridge()
    try:
        bridge.create()
        yield bridge
    finally:
        bridge.delete()
        lock.release()


@pytest.fixture(scope="session")
def pg_server(server_root: Path, node_network: Bridge) -> Iterator[Server]:
    server = start_postgres(server_root, bridge=(node_network.address, node_network.subnet))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mysql_server(server_root: Path, node_network: Bridge) -> Iterator[Server]:
    server = start_mariadb(server_root, bridge=(node_network.address, node_network.subnet))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def k8s(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, node_network: Bridge) -> Iterator[Cluster]:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        bin_dir = ensure_binaries()
        node_bin = node_binaries()
    control_plane = ControlPlane(bin_dir, tmp_path_factory.mktemp("controlplane"), address=node_network.address)
    # Outside pytest's temporary directory, which may sit under /tmp: the kubelet's root
    # holds mounts, and a short path keeps the overlay mount options short.
    state = Path(tempfile.mkdtemp(prefix="baselinr-node-", dir="/var/tmp"))
    node = RealNode(node_bin, control_plane, state, node_network)
    request.config.stash[_NODE] = node

    def stop() -> None:
        try:
            node.stop()
        finally:
            control_plane.stop()

    atexit.register(stop)
    try:
        control_plane.start()
        node.start()
        (control_plane.work_dir / "logs" / "node-timings.json").write_text(json.dumps(node.timings, indent=1))
        yield Cluster(control_plane.kubeconfig, kubectl=str(bin_dir / "kubectl"), control_plane=control_plane)
    finally:
        atexit.unregister(stop)
        stop()


@pytest.fixture
def namespace(k8s: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace that enforces Pod Security ``restricted``, deleted (without waiting) afterwards."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{slug}-{secrets.token_hex(3)}"
    restricted_namespace(k8s, name)
    yield name
    k8s.kubectl("delete", "namespace", name, "--wait=false")


def restricted_namespace(k8s: Cluster, name: str) -> None:
    """Create namespace ``name`` enforcing Pod Security ``restricted`` and wait for its default service account."""
    manifest = (
        "apiVersion: v1\nkind: Namespace\nmetadata:\n"
        f"  name: {name}\n  labels:\n"
        "    pod-security.kubernetes.io/enforce: restricted\n"
        "    pod-security.kubernetes.io/enforce-version: latest\n"
    )
    k8s.kubectl("apply", "-f", "-", input=manifest, check=True)
    wait_for(
        lambda: k8s.kubectl("get", "serviceaccount", "default", "-n", name).returncode == 0,
        timeout=30,
        what=f"service account default in namespace {name}",
    )


@pytest.fixture
def real_node(k8s: Cluster, request: pytest.FixtureRequest) -> RealNode:
    """The session's node (containerd, kubelet), for what only the node itself can do: signal a container."""
    return request.config.stash[_NODE]


@pytest.fixture(scope="session")
def helm_bin() -> str:
    from tests.helm.helm import helm_binary

    return helm_binary()


@pytest.fixture(scope="module")
def module_operator(k8s: Cluster, helm_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """The operator as the chart installs it by default (two replicas, cluster-wide RBAC), for every test of a
    module that leaves the operator's pods alone; uninstalled when the module ends, and no replica's log may
    hold a traceback then."""
    values = {"allowedImages": ["baselinr", "127.0.0.1:1/"]}  # test_pod_scenarios' image the node cannot pull
    with install_operator(k8s, helm_bin, tmp_path_factory.mktemp("operator"), watch=[], operator_values=values) as made:
        yield made
        assert_no_traceback(made.all_logs())


@pytest.fixture
def installed(module_operator: Installed, namespace: str) -> Installed:
    """The module's operator, with this test's ``namespace`` as the one its helpers look at."""
    return dataclasses.replace(module_operator, namespace=namespace)


@pytest.fixture
def own_operator(k8s: Cluster, namespace: str, helm_bin: str, tmp_path: Path) -> Iterator[Installed]:
    """An operator of this test's own, watching only its ``namespace``: for tests that delete, freeze or roll
    the operator's pods."""
    with install_operator(k8s, helm_bin, tmp_path, watch=[namespace], release="baselinr-operator-own") as made:
        yield made


@pytest.fixture
def backup_volume(k8s: Cluster, namespace: str) -> Iterator[Path]:
    """A local PersistentVolume on the node and the PVC ``baselinr-backups`` of ``namespace`` bound to it."""
    with local_volume(k8s, namespace) as directory:
        yield directory


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    node = item.config.stash.get(_NODE, None)
    if report.failed and node is not None:
        for process in [*node.control_plane.processes, *node.processes]:
            report.sections.append((f"{process.name} log (tail of {process.log_path})", process.tail(60)))
    return report
