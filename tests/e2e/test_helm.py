"""The README's Kubernetes path with Helm, on the real control plane.

``helm install`` the operator chart (its Deployment's Pod is run by the node
agent as a real ``baselinr-operator`` process with the chart's service
account token, so the chart's RBAC is what the operator gets), then an
application release (``tests/helm/example-app``, the baselinr-schema chart as
its dependency) whose ``helm upgrade`` carries a new ``schema.targetVersion``:
the hook Job's ``baselinr-schema wait`` runs as the hook's own service account,
sets the target and blocks the upgrade until the operator's migrate Job has
brought the SQLite database there. A broken migration fails the upgrade, and
the engine's message is where the README says to look.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.helm import EXAMPLE_APP, OPERATOR_CHART, ROOT, SCHEMA_CHART, Helm, helm_binary
from tests.support.packages import sql_migration, write_package

from .cluster import Cluster
from .waiting import forbidden

pytestmark = pytest.mark.e2e

SECRET = "app-baselinr-config"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def helm_bin() -> str:
    return helm_binary()


@pytest.fixture
def helm(helm_bin: str, k8s: Cluster, tmp_path: Path) -> Helm:
    return Helm(helm_bin, tmp_path / "helm-home", kubeconfig=k8s.kubeconfig)


def node_logs(k8s: Cluster, namespace: str) -> str:
    """What the node agent's processes in ``namespace`` printed (kubectl logs needs a kubelet)."""
    if k8s.control_plane is None:
        return ""
    root = k8s.control_plane.work_dir / "node" / namespace
    parts = []
    for log in sorted(root.glob("*/containers/*/log")):
        parts.append(f"--- {log.relative_to(root)}\n{log.read_text(errors='replace')[-4000:]}")
    return "\n".join(parts)


@dataclass
class App:
    """One test's namespace with the operator installed by its chart, a SQLite database and a migrations package."""

    k8s: Cluster
    helm: Helm
    namespace: str
    chart: Path
    database: Path
    package_root: Path
    package: str

    def values(self, target: int, release_label: str) -> list[str]:
        env = [
            {"name": "PYTHONPATH", "value": f"{self.package_root}:{ROOT}"},  # the package, then the code under test
            {"name": "BASELINR_MIGRATIONS_PACKAGE", "value": self.package},
        ]
        return [
            "--set", f"schema.targetVersion={target}",
            "--set", f"releaseLabel={release_label}",
            "--set", "schema.wait.timeoutSeconds=150",
            "--set-json", f"schema.jobTemplate={json.dumps({'env': env})}",
        ]  # fmt: skip

    def release(self, verb: str, target: int, label: str) -> subprocess.CompletedProcess[str]:
        return self.helm.run(
            verb, "app", str(self.chart), "-n", self.namespace, *self.values(target, label), "--wait", "--timeout", "200s",
            timeout=260,
        )  # fmt: skip

    def schema(self) -> dict[str, Any]:
        found: dict[str, Any] = self.k8s.get_json("bschema", "app", "-n", self.namespace)
        return found

    def settings(self) -> dict[str, str]:
        data: dict[str, str] = self.k8s.get_json("configmap", "app-settings", "-n", self.namespace)["data"]
        return data

    def tables(self) -> set[str]:
        with sqlite3.connect(self.database) as conn:
            return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def debug(self) -> str:
        return node_logs(self.k8s, self.namespace)


def make_app(k8s: Cluster, helm: Helm, namespace: str, tmp_path: Path, versions: dict[int, str]) -> Iterator[App]:
    # The README's path: the operator chart, watching the application's namespace.
    release = f"op-{namespace[-6:]}"
    proc = helm.run(
        "install", release, str(OPERATOR_CHART), "-n", namespace,
        "--set", f"operator.watchNamespaces={{{namespace}}}",
        "--set", f"metrics.port={free_port()}", "--set", f"operator.healthPort={free_port()}",
        "--set", "operator.retrySeconds=2", "--set", "operator.tickSeconds=1",
        "--wait", "--timeout", "120s",
        timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr + node_logs(k8s, namespace)
    assert "kubectl get bschema -w" in proc.stdout, "NOTES.txt says how to watch"
    cleanup: list[Path] = []
    try:
        database = tmp_path / "app.db"
        config = tmp_path / "config.yml"
        config.write_text(yaml.safe_dump({"storage": {"connection": {"type": "sqlite", "filepath": str(database)}}}))
        k8s.kubectl("create", "secret", "generic", SECRET, "-n", namespace, f"--from-file=config.yml={config}", check=True)
        # Not under /tmp: the operator's Jobs mount an emptyDir there, and the node agent maps /tmp/... paths in
        # their env to it, which would hide the package from PYTHONPATH.
        root = Path(tempfile.mkdtemp(prefix="baselinr-helm-e2e-", dir="/var/tmp"))
        cleanup.append(root)
        package = write_package(root, versions)
        chart = tmp_path / "example-app"
        shutil.copytree(EXAMPLE_APP, chart)
        # As in a real application repository: the dependency points at the baselinr-schema chart.
        meta = yaml.safe_load((chart / "Chart.yaml").read_text())
        meta["dependencies"][0]["repository"] = f"file://{SCHEMA_CHART}"
        (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
        helm.run("dependency", "build", str(chart), check=True)
        yield App(k8s, helm, namespace, chart, database, root, package)
    finally:
        helm.run("uninstall", "app", "-n", namespace, "--wait", "--timeout", "60s")
        helm.run("uninstall", release, "-n", namespace, "--wait", "--timeout", "60s")
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)


GOOD = {2: sql_migration(2, "CREATE TABLE app_orders (id INTEGER PRIMARY KEY)", "DROP TABLE app_orders", "Add app_orders")}
BROKEN = {2: sql_migration(2, "ALTER TABLE app_missing ADD COLUMN x INTEGER", None, "Broken on purpose")}


@pytest.fixture
def good_app(k8s: Cluster, helm: Helm, namespace: str, tmp_path: Path) -> Iterator[App]:
    yield from make_app(k8s, helm, namespace, tmp_path, GOOD)


@pytest.fixture
def broken_app(k8s: Cluster, helm: Helm, namespace: str, tmp_path: Path) -> Iterator[App]:
    yield from make_app(k8s, helm, namespace, tmp_path, BROKEN)


def test_upgrade_waits_for_the_schema(good_app: App) -> None:
    app = good_app
    installed = app.release("install", 1, "v1")
    assert installed.returncode == 0, installed.stdout + installed.stderr + app.debug()
    schema = app.schema()
    assert schema["status"]["currentVersion"] == 1 and schema["status"]["phase"] == "Ready"
    assert "baselinr_runs" in app.tables() and "app_orders" not in app.tables()

    upgraded = app.release("upgrade", 2, "v2")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr + app.debug()
    # The release went on only after the database was at v2: the hook blocked it until then.
    assert "app_orders" in app.tables()
    assert app.settings() == {"release": "v2", "schemaVersion": "2"}
    status = app.schema()["status"]
    assert status["currentVersion"] == 2 and status["lastMigration"]["to"] == 2
    table = app.k8s.kubectl("get", "bschema", "-n", app.namespace, check=True).stdout.splitlines()
    assert table[0].split()[:5] == ["NAME", "TARGET", "CURRENT", "PHASE", "VALID"]
    assert table[1].split()[:4] == ["app", "2", "2", "Ready"]
    # The hook's Job, service account and Role are gone after success; the BaselinrSchema stays.
    jobs = [j["metadata"]["name"] for j in app.k8s.get_json("jobs", "-n", app.namespace)["items"]]
    assert "app-schema-wait" not in jobs
    assert app.k8s.get_json("serviceaccount", "app-schema-wait", "-n", app.namespace) is None
    fields = app.k8s.get_json("bschema", "app", "-n", app.namespace, "--show-managed-fields")["metadata"]["managedFields"]
    managers = {f["manager"] for f in fields}
    assert "baselinr-schema" in managers and "helm" not in managers

    # The chart's RBAC was enough: the operator (a real process with the chart's service account) was never refused.
    operator_log = "".join(
        log.read_text(errors="replace")
        for log in (app.k8s.control_plane.work_dir / "node" / app.namespace).glob("op-*/containers/operator/log")
    ) if app.k8s.control_plane is not None else ""  # fmt: skip
    assert app.k8s.control_plane is None or operator_log, "the operator process wrote a log"
    assert not forbidden(operator_log), operator_log[-3000:]

    # Uninstalling the application leaves the schema (and the database) alone.
    app.helm.run("uninstall", "app", "-n", app.namespace, "--wait", check=True)
    assert app.schema()["status"]["currentVersion"] == 2


def test_broken_migration_fails_the_upgrade_with_the_engines_message(broken_app: App) -> None:
    app = broken_app
    installed = app.release("install", 1, "v1")
    assert installed.returncode == 0, installed.stdout + installed.stderr + app.debug()

    upgraded = app.release("upgrade", 2, "v2")
    assert upgraded.returncode != 0, upgraded.stdout + upgraded.stderr
    assert "pre-upgrade hooks failed" in upgraded.stderr and "app-schema-wait" in upgraded.stderr, upgraded.stderr
    # The application's own manifests were not upgraded.
    assert app.settings() == {"release": "v1", "schemaVersion": "1"}
    status = app.schema()["status"]
    assert status["phase"] == "Failed" and status["currentVersion"] == 1
    # The engine's message: in the status, and in the hook Pod's termination message (kubectl describe pod).
    assert "app_missing" in status["message"], status
    pods = app.k8s.get_json("pods", "-n", app.namespace, "-l", "job-name=app-schema-wait")["items"]
    assert len(pods) == 1
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 4
    assert "app_missing" in terminated["message"] and "BaselinrSchema" in terminated["message"]
    history = app.helm.run("history", "app", "-n", app.namespace, "-o", "json", check=True)
    assert [r["status"] for r in json.loads(history.stdout)] == ["deployed", "failed"]
