"""Helpers of the real node tier's operator scenarios: the operator installed by its chart, the config
Secret, a local PersistentVolume for backups, BaselinrSchema manifests, and reads of status and history.

Used by ``conftest.py`` (the ``installed`` and ``backup_volume`` fixtures) and the ``test_*`` modules
of this directory.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.cluster import Cluster
from tests.e2e.waiting import WaitTimeout, wait_for
from tests.helm.helm import OPERATOR_CHART, Helm
from tests.support.servers import Server

from .node import NODE_NAME

SECRET = "baselinr-storage"
CLAIM = "baselinr-backups"


@dataclass
class Installed:
    """The operator installed by its chart in its own namespace, watching ``namespace`` (or every one)."""

    k8s: Cluster
    helm: Helm
    release: str
    operator_namespace: str
    namespace: str

    def pods(self) -> list[dict[str, Any]]:
        """The operator's pods (all replicas), oldest first."""
        items: list[dict[str, Any]] = self.k8s.get_json("pods", "-n", self.operator_namespace)["items"]
        return sorted(items, key=lambda p: p["metadata"]["creationTimestamp"])

    def logs(self, tail: int = 80) -> str:
        """The last lines of every replica's log, each under its pod's name."""
        parts = []
        for pod in self.pods():
            name = pod["metadata"]["name"]
            proc = self.k8s.kubectl("logs", "-n", self.operator_namespace, name, f"--tail={tail}")
            parts.append(f"--- {name}\n{proc.stdout}{proc.stderr}")
        return "\n".join(parts)

    def all_logs(self) -> str:
        """Every line each replica's current container wrote (for the no-traceback gate)."""
        return self.logs(tail=-1)

    def lease(self) -> dict[str, Any]:
        """The leader election's Lease (named after the release's Deployment)."""
        deployment = self.k8s.get_json("deployment", self.release, "-n", self.operator_namespace)
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        found: dict[str, Any] = self.k8s.get_json("lease", env["BASELINR_OPERATOR_LEASE_NAME"], "-n", self.operator_namespace)
        return found or {}

    def leader(self) -> str | None:
        """The pod that holds the Lease (its identity is the pod's name and a random suffix)."""
        identity = (self.lease().get("spec") or {}).get("holderIdentity")
        return str(identity).rsplit("_", 1)[0] if identity else None


@contextmanager
def install_operator(
    k8s: Cluster,
    helm_bin: str,
    work: Path,
    *,
    watch: list[str],
    release: str = "baselinr-operator",
    operator_values: dict[str, Any] | None = None,
    chart_values: dict[str, Any] | None = None,
) -> Iterator[Installed]:
    """``helm install`` of the operator chart into a new restricted namespace; uninstalled afterwards.

    ``watch`` empty means every namespace (the chart's cluster-wide RBAC).
    """
    from .conftest import restricted_namespace

    assert k8s.control_plane is not None
    helm = Helm(helm_bin, work / "helm-home", kubeconfig=k8s.kubeconfig)
    operator_namespace = f"baselinr-system-{secrets.token_hex(3)}"
    restricted_namespace(k8s, operator_namespace)
    values = {
        "image": {"pullPolicy": "Never"},
        "operator": {
            "watchNamespaces": watch,
            "retrySeconds": 2,
            "tickSeconds": 1,
            # No kube-proxy here: the pods dial the API server on the bridge address
            # instead of the kubernetes Service's cluster IP.
            "extraEnv": [
                {"name": "KUBERNETES_SERVICE_HOST", "value": k8s.control_plane.address},
                {"name": "KUBERNETES_SERVICE_PORT", "value": str(k8s.control_plane.apiserver_port)},
            ],
            **(operator_values or {}),
        },
        **(chart_values or {}),
    }
    values_file = work / f"values-{release}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    helm.run("install", release, str(OPERATOR_CHART), "-n", operator_namespace, "-f", str(values_file), check=True)
    made = Installed(k8s, helm, release, operator_namespace, watch[0] if len(watch) == 1 else "")
    rollout = k8s.kubectl("rollout", "status", f"deployment/{release}", "-n", operator_namespace, "--timeout=120s", timeout=140)
    assert rollout.returncode == 0, rollout.stdout + rollout.stderr + describe(k8s, operator_namespace) + made.logs()
    try:
        yield made
    finally:
        helm.run("uninstall", release, "-n", operator_namespace, "--wait", "--timeout=60s")
        k8s.kubectl("delete", "namespace", operator_namespace, "--wait=false")


def describe(k8s: Cluster, namespace: str) -> str:
    """Pods and Events of ``namespace``, for a failure message."""
    pods = k8s.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout
    events = k8s.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp").stdout
    return f"\n--- pods\n{pods}\n--- events\n{events[-4000:]}"


@contextmanager
def local_volume(k8s: Cluster, namespace: str) -> Iterator[Path]:
    """A local PersistentVolume on the node (a directory made here) and a PVC bound to it."""
    directory = Path(tempfile.mkdtemp(prefix="baselinr-node-pv-", dir="/var/tmp"))
    pv_name = f"{namespace}-backups"
    manifests = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "baselinr-local",
                "claimRef": {"namespace": namespace, "name": CLAIM},
                "local": {"path": str(directory)},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}]}
                        ]
                    }
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": CLAIM, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "baselinr-local",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]
    for manifest in manifests:
        k8s.apply(json.dumps(manifest)).check_returncode()
    wait_for(
        lambda: (k8s.get_json("pvc", CLAIM, "-n", namespace) or {}).get("status", {}).get("phase") == "Bound",
        timeout=60,
        what=f"PVC {CLAIM} to be Bound",
    )
    try:
        yield directory
    finally:
        k8s.kubectl("delete", "pvc", CLAIM, "-n", namespace, "--wait=false")
        k8s.kubectl("delete", "pv", pv_name, "--wait=false")
        shutil.rmtree(directory, ignore_errors=True)


def write_config_secret(k8s: Cluster, namespace: str, connection: dict[str, Any], tmp_path: Path) -> None:
    """The Secret holding config.yml for ``connection`` (replaced if it exists)."""
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"environment": "test", "storage": {"connection": connection}}))
    made = k8s.kubectl(
        "create", "secret", "generic", SECRET, "-n", namespace, f"--from-file=config.yml={config}",
        "--dry-run=client", "-o", "yaml", check=True,
    )  # fmt: skip
    config.unlink()
    k8s.kubectl("apply", "-n", namespace, "-f", "-", input=made.stdout, check=True)


def config_secret(k8s: Cluster, namespace: str, server: Server, tmp_path: Path) -> str:
    """A database on ``server`` and the Secret holding its config.yml; returns the database's name."""
    database = server.create_database("node")
    write_config_secret(k8s, namespace, server.connection(database), tmp_path)
    return database


def schema(name: str, target: int, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "targetVersion": target,
        "configSecretRef": {"name": SECRET, "key": "config.yml"},
        "backup": {"mode": "Required", "volume": {"persistentVolumeClaim": {"claimName": CLAIM}}},
    }
    body.update(spec)
    return {"apiVersion": "baselinr.io/v1alpha1", "kind": "BaselinrSchema", "metadata": {"name": name}, "spec": body}


def status_of(k8s: Cluster, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = (k8s.get_json("bschema", name, "-n", namespace) or {}).get("status") or {}
    return status


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


def wait_status(
    inst: Installed, namespace: str, name: str, accept: Callable[[dict[str, Any]], bool], what: str, timeout: float = 180
) -> dict[str, Any]:
    """Poll the status of ``name`` until ``accept`` holds; on timeout, fail with the status, pods, Events and
    the operator's log."""
    k8s = inst.k8s

    def probe() -> dict[str, Any] | None:
        status = status_of(k8s, namespace, name)
        return status if accept(status) else None

    try:
        return wait_for(probe, timeout=timeout, what=what, interval=0.5)
    except WaitTimeout as exc:
        status = json.dumps(status_of(k8s, namespace, name), indent=1)
        raise AssertionError(f"{exc}\nstatus: {status}{describe(k8s, namespace)}\n--- operator log\n{inst.logs()}") from None


def wait_ready(inst: Installed, name: str, current: int, timeout: float = 240, namespace: str | None = None) -> dict[str, Any]:
    ns = namespace or inst.namespace
    return wait_status(
        inst,
        ns,
        name,
        lambda s: s.get("phase") == "Ready" and s.get("currentVersion") == current,
        f"{name} Ready at v{current}",
        timeout,
    )


def connect(server: Server, database: str, **kwargs: Any) -> Any:
    """A DBAPI connection to ``database`` on ``server`` (over the bridge address), as its administrator."""
    if server.kind == "postgres":
        import psycopg2

        return psycopg2.connect(
            host=server.host, port=server.port, user=server.user, password=server.password, dbname=database, **kwargs
        )
    import pymysql

    return pymysql.connect(host=server.host, port=server.port, user=server.user, password=server.password, database=database)


def history(server: Server, database: str) -> list[tuple[int, str]]:
    """(version, status) rows of the database's version table, read over the bridge address."""
    conn = connect(server, database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version, status FROM baselinr_schema_version ORDER BY version, applied_at")
            return [(int(v), str(s)) for v, s in cur.fetchall()]
    finally:
        conn.close()


def assert_no_traceback(log: str) -> None:
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "Traceback (most recent call last)" in line:
            raise AssertionError("the operator logged a traceback:\n" + "\n".join(lines[max(i - 3, 0) : i + 40]))
