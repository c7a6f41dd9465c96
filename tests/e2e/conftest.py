"""Fixtures and hooks of the end-to-end tier.

``k8s`` (session scope) starts a local control plane (etcd, kube-apiserver,
kube-controller-manager and the test node agent, see ``cluster.py`` and
``node_agent.py``), building the binaries first if this machine has none
cached, or wraps an existing cluster given with ``--kubeconfig PATH`` (or the
``E2E_KUBECONFIG`` environment variable). ``namespace`` gives each test a
fresh namespace. When a test fails, the tail of each control plane log is
added to its report.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from .cluster import BUILD_TIMEOUT, Cluster, ControlPlane, cached_binaries, ensure_binaries, find_kubectl
from .waiting import wait_for

_CONTROL_PLANE = pytest.StashKey[ControlPlane]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("e2e", "end-to-end tests against Kubernetes")
    group.addoption(
        "--kubeconfig",
        action="store",
        default=None,
        metavar="PATH",
        help="run the e2e tests against the cluster of this kubeconfig instead of starting a local "
        "control plane (no node agent is started: the cluster's kubelets run the pods)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end test against a real Kubernetes API server")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give the test that triggers a first-time build of the binaries a longer timeout."""
    if _existing_kubeconfig(config) is not None or not config.pluginmanager.hasplugin("timeout"):
        return
    users = [item for item in items if "k8s" in getattr(item, "fixturenames", ())]
    if users and cached_binaries() is None:
        users[0].add_marker(pytest.mark.timeout(BUILD_TIMEOUT))


def _existing_kubeconfig(config: pytest.Config) -> Path | None:
    value = config.getoption("kubeconfig", default=None) or os.environ.get("E2E_KUBECONFIG")
    return Path(value).expanduser() if value else None


@pytest.fixture(scope="session")
def k8s(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The cluster under test: started here, or the one given by --kubeconfig."""
    existing = _existing_kubeconfig(request.config)
    if existing is not None:
        if not existing.is_file():
            pytest.fail(f"--kubeconfig {existing}: no such file")
        yield Cluster(existing, kubectl=find_kubectl(None))
        return

    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        # Show build progress (minutes on a machine's first run) live.
        with capture.global_and_fixture_disabled():
            bin_dir = ensure_binaries()
    else:
        bin_dir = ensure_binaries()

    control_plane = ControlPlane(bin_dir, tmp_path_factory.mktemp("controlplane"))
    request.config.stash[_CONTROL_PLANE] = control_plane
    atexit.register(control_plane.stop)  # in case teardown never runs
    try:
        control_plane.start()
        yield Cluster(control_plane.kubeconfig, kubectl=str(bin_dir / "kubectl"), control_plane=control_plane)
    finally:
        control_plane.stop()
        atexit.unregister(control_plane.stop)


@pytest.fixture
def namespace(k8s: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{slug}-{secrets.token_hex(3)}"
    k8s.kubectl("create", "namespace", name, check=True)
    # Pods are refused until the service account controller made "default".
    wait_for(
        lambda: k8s.kubectl("get", "serviceaccount", "default", "-n", name).returncode == 0,
        timeout=30,
        what=f"service account default in namespace {name}",
    )
    yield name
    k8s.kubectl("delete", "namespace", name, "--wait=false")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    control_plane = item.config.stash.get(_CONTROL_PLANE, None)
    if report.failed and control_plane is not None:
        for process in control_plane.processes:
            report.sections.append((f"{process.name} log (tail of {process.log_path})", process.tail(60)))
    return report
