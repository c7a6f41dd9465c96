"""The operator as users install it, on a real node: the chart's Deployment running our image,
a BaselinrSchema in a namespace that enforces Pod Security ``restricted``, backup and migrate
Jobs as pods of our image with the config Secret mounted and backups on a PVC bound to a
local PersistentVolume, against PostgreSQL and MariaDB.

Nothing here stands in for a kubelet: containerd and runc run the containers, with the
image's entrypoint, user and environment and the pods' security contexts applied.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION as LATEST
from tests.e2e.cluster import Cluster
from tests.e2e.waiting import WaitTimeout, wait_for
from tests.helm.helm import OPERATOR_CHART, SCHEMA_CHART, Helm, helm_binary
from tests.support.servers import Server

from .conftest import restricted_namespace
from .images import IMAGE
from .node import NODE_NAME

SECRET = "baselinr-storage"
CLAIM = "baselinr-backups"
CRD = "baselinrschemas.baselinr.io"

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def helm_bin() -> str:
    return helm_binary()


@dataclass
class Installed:
    """The operator installed by its chart in its own namespace, watching ``namespace``."""

    k8s: Cluster
    helm: Helm
    release: str
    operator_namespace: str
    namespace: str

    def logs(self) -> str:
        proc = self.k8s.kubectl("logs", "-n", self.operator_namespace, "deployment/" + self.release, "--tail=80")
        return proc.stdout + proc.stderr


@pytest.fixture
def installed(k8s: Cluster, namespace: str, helm_bin: str, tmp_path: Path) -> Iterator[Installed]:
    assert k8s.control_plane is not None
    helm = Helm(helm_bin, tmp_path / "helm-home", kubeconfig=k8s.kubeconfig)
    operator_namespace = f"baselinr-system-{secrets.token_hex(3)}"
    restricted_namespace(k8s, operator_namespace)
    values = {
        "image": {"pullPolicy": "Never"},
        "operator": {
            "watchNamespaces": [namespace],
            "retrySeconds": 2,
            "tickSeconds": 1,
            # No kube-proxy here: the pods dial the API server on the bridge address
            # instead of the kubernetes Service's cluster IP.
            "extraEnv": [
                {"name": "KUBERNETES_SERVICE_HOST", "value": k8s.control_plane.address},
                {"name": "KUBERNETES_SERVICE_PORT", "value": str(k8s.control_plane.apiserver_port)},
            ],
        },
    }
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    release = "baselinr-operator"
    helm.run("install", release, str(OPERATOR_CHART), "-n", operator_namespace, "-f", str(values_file), check=True)
    made = Installed(k8s, helm, release, operator_namespace, namespace)
    rollout = k8s.kubectl("rollout", "status", f"deployment/{release}", "-n", operator_namespace, "--timeout=120s", timeout=140)
    assert rollout.returncode == 0, rollout.stdout + rollout.stderr + describe(k8s, operator_namespace) + made.logs()
    yield made
    helm.run("uninstall", release, "-n", operator_namespace, "--wait", "--timeout=60s")
    k8s.kubectl("delete", "namespace", operator_namespace, "--wait=false")


def describe(k8s: Cluster, namespace: str) -> str:
    """Pods and Events of ``namespace``, for a failure message."""
    pods = k8s.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout
    events = k8s.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp").stdout
    return f"\n--- pods\n{pods}\n--- events\n{events[-4000:]}"


@pytest.fixture
def backup_volume(k8s: Cluster, namespace: str) -> Iterator[Path]:
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
    yield directory
    k8s.kubectl("delete", "pvc", CLAIM, "-n", namespace, "--wait=false")
    k8s.kubectl("delete", "pv", pv_name, "--wait=false")
    shutil.rmtree(directory, ignore_errors=True)


def config_secret(k8s: Cluster, namespace: str, server: Server, tmp_path: Path) -> str:
    """A database on ``server`` and the Secret holding its config.yml; returns the database's name."""
    database = server.create_database("node")
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"environment": "test", "storage": {"connection": server.connection(database)}}))
    k8s.kubectl("create", "secret", "generic", SECRET, "-n", namespace, f"--from-file=config.yml={config}", check=True)
    config.unlink()
    return database


def schema(name: str, target: int) -> dict[str, Any]:
    return {
        "apiVersion": "baselinr.io/v1alpha1",
        "kind": "BaselinrSchema",
        "metadata": {"name": name},
        "spec": {
            "targetVersion": target,
            "configSecretRef": {"name": SECRET, "key": "config.yml"},
            "backup": {"mode": "Required", "volume": {"persistentVolumeClaim": {"claimName": CLAIM}}},
        },
    }


def wait_ready(inst: Installed, name: str, current: int, timeout: float = 240) -> dict[str, Any]:
    k8s, ns = inst.k8s, inst.namespace

    def probe() -> dict[str, Any] | None:
        status: dict[str, Any] = (k8s.get_json("bschema", name, "-n", ns) or {}).get("status") or {}
        return status if status.get("phase") == "Ready" and status.get("currentVersion") == current else None

    try:
        return wait_for(probe, timeout=timeout, what=f"{name} Ready at v{current}", interval=0.5)
    except WaitTimeout as exc:
        status = json.dumps((k8s.get_json("bschema", name, "-n", ns) or {}).get("status"), indent=1)
        raise AssertionError(f"{exc}\nstatus: {status}{describe(k8s, ns)}\n--- operator log\n{inst.logs()}") from None


def history(server: Server, database: str) -> list[tuple[int, str]]:
    """(version, status) rows of the database's version table, read over the bridge address."""
    query = "SELECT version, status FROM baselinr_schema_version ORDER BY version, applied_at"
    conn: Any
    if server.kind == "postgres":
        import psycopg2

        conn = psycopg2.connect(host=server.host, port=server.port, user=server.user, password=server.password, dbname=database)
    else:
        import pymysql

        conn = pymysql.connect(host=server.host, port=server.port, user=server.user, password=server.password, database=database)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return [(int(v), str(s)) for v, s in cur.fetchall()]
    finally:
        conn.close()


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_operator_from_chart_backs_up_and_migrates_in_restricted_pods(
    dialect: str, installed: Installed, backup_volume: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    k8s, ns = installed.k8s, installed.namespace
    server: Server = request.getfixturevalue("pg_server" if dialect == "postgres" else "mysql_server")
    database = config_secret(k8s, ns, server, tmp_path)

    # The operator's own pod: our image, the chart's service account, admitted under "restricted".
    pods = k8s.get_json("pods", "-n", installed.operator_namespace)["items"]
    assert len(pods) == 1
    operator_pod = pods[0]
    assert operator_pod["spec"]["serviceAccountName"] == installed.release
    assert operator_pod["status"]["containerStatuses"][0]["imageID"]  # containerd ran it

    # Empty database -> one version below the latest: the backup is skipped (nothing to back up).
    k8s.apply(json.dumps(schema("analytics", LATEST - 1)), ns).check_returncode()
    status = wait_ready(installed, "analytics", LATEST - 1)
    assert status["lastBackup"]["skipped"] is True
    assert history(server, database) == [(v, "applied") for v in range(1, LATEST)]

    # -> the latest: a real backup onto the PVC first, then the migration.
    k8s.kubectl(
        "patch",
        "bschema",
        "analytics",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"targetVersion": LATEST}}),
        check=True,
    )
    status = wait_ready(installed, "analytics", LATEST)
    assert status["valid"] is True
    assert status["lastBackup"]["skipped"] is False and status["lastBackup"]["version"] == LATEST - 1
    assert status["lastMigration"]["from"] == LATEST - 1 and status["lastMigration"]["to"] == LATEST
    assert history(server, database) == [(v, "applied") for v in range(1, LATEST + 1)]

    # The backup landed on the local PersistentVolume, written as the image's user.
    manifests = list(backup_volume.glob("**/manifest.json"))
    assert len(manifests) == 1, sorted(str(p) for p in backup_volume.rglob("*"))
    assert manifests[0].stat().st_uid == 10001

    # Every Job ran as a pod of our image on the node, and succeeded.
    jobs = sorted(j["metadata"]["name"] for j in k8s.get_json("jobs", "-n", ns)["items"])
    assert jobs == [
        f"analytics-backup-v{LATEST - 1}-1",
        f"analytics-backup-v{LATEST}-2",
        f"analytics-migrate-v{LATEST - 1}-1",
        f"analytics-migrate-v{LATEST}-2",
    ]
    job_pods = k8s.get_json("pods", "-n", ns)["items"]
    assert len(job_pods) == 4
    for pod in job_pods:
        assert pod["spec"]["nodeName"] == NODE_NAME
        assert pod["status"]["phase"] == "Succeeded", json.dumps(pod["status"])
        (container,) = pod["status"]["containerStatuses"]
        assert container["image"] == IMAGE and container["imageID"]
        terminated = container["state"]["terminated"]
        assert terminated["exitCode"] == 0
        assert json.loads(terminated["message"])  # the engine's JSON result, read from the termination message
    # The container's own output is there for kubectl logs (served by the kubelet).
    logs = k8s.kubectl("logs", "-n", ns, f"job/analytics-migrate-v{LATEST}-2", check=True).stdout
    assert logs.strip()
    assert server.password not in logs


def test_failed_migration_reports_the_engine_message_then_retry_succeeds(
    installed: Installed, pg_server: Server, tmp_path: Path
) -> None:
    """A role that may not create tables (PostgreSQL 15 grants no CREATE on ``public``): Failed with the
    engine's message; after the grant, the ``baselinr.io/retry`` annotation takes it to the target."""
    import psycopg2

    k8s, ns = installed.k8s, installed.namespace
    database = pg_server.create_database("node")
    role = f"limited_{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    pg_server.admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    connection = {**pg_server.connection(database), "username": role, "password": password}
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"environment": "test", "storage": {"connection": connection}}))
    k8s.kubectl("create", "secret", "generic", SECRET, "-n", ns, f"--from-file=config.yml={config}", check=True)
    config.unlink()
    body = schema("analytics", LATEST)
    body["spec"]["backup"] = {"mode": "Skip"}
    k8s.apply(json.dumps(body), ns).check_returncode()

    def failed() -> dict[str, Any] | None:
        status: dict[str, Any] = (k8s.get_json("bschema", "analytics", "-n", ns) or {}).get("status") or {}
        return status if status.get("phase") == "Failed" else None

    try:
        status = wait_for(failed, timeout=180, what="analytics to fail", interval=0.5)
    except WaitTimeout as exc:
        raise AssertionError(f"{exc}{describe(k8s, ns)}\n--- operator log\n{installed.logs()}") from None
    assert "permission denied" in status["message"], status["message"]
    assert password not in json.dumps(status)
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Ready"][0] == "False" and conditions["Stalled"][0] == "True"
    (pod,) = k8s.get_json("pods", "-n", ns)["items"]
    (container,) = pod["status"]["containerStatuses"]
    assert container["image"] == IMAGE and container["state"]["terminated"]["exitCode"] != 0

    conn = psycopg2.connect(
        host=pg_server.host, port=pg_server.port, user=pg_server.user, password=pg_server.password, dbname=database
    )
    with conn, conn.cursor() as cur:
        cur.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
    conn.close()
    k8s.kubectl("annotate", "bschema", "analytics", "-n", ns, "baselinr.io/retry=1", check=True)
    status = wait_ready(installed, "analytics", LATEST)
    assert status["retryToken"] == "1" and status["valid"] is True
    assert history(pg_server, database) == [(v, "applied") for v in range(1, LATEST + 1)]


def test_helm_hook_sets_the_target_and_waits_on_install_and_upgrade(
    installed: Installed, backup_volume: Path, pg_server: Server, tmp_path: Path
) -> None:
    """``helm/baselinr-schema``'s pre-install/pre-upgrade hook Job, a restricted pod of our image with its
    own ServiceAccount, sets the target and blocks the release until the operator reports it reached."""
    assert installed.k8s.control_plane is not None
    k8s, ns, cp = installed.k8s, installed.namespace, installed.k8s.control_plane
    database = config_secret(k8s, ns, pg_server, tmp_path)

    def release(verb: str, target: int) -> None:
        values = {
            "targetVersion": target,
            "configSecretRef": {"name": SECRET},
            "backup": {"mode": "Required", "volume": {"persistentVolumeClaim": {"claimName": CLAIM}}},
            "wait": {
                "timeoutSeconds": 240,
                "image": {"pullPolicy": "Never"},
                "extraEnv": [
                    {"name": "KUBERNETES_SERVICE_HOST", "value": cp.address},
                    {"name": "KUBERNETES_SERVICE_PORT", "value": str(cp.apiserver_port)},
                ],
            },
        }
        values_file = tmp_path / f"schema-{target}.yaml"
        values_file.write_text(yaml.safe_dump(values))
        proc = installed.helm.run(verb, "app", str(SCHEMA_CHART), "-n", ns, "-f", str(values_file), "--timeout=300s", timeout=330)
        assert proc.returncode == 0, proc.stdout + proc.stderr + describe(k8s, ns) + "\n--- operator log\n" + installed.logs()

    release("install", LATEST - 1)
    (resource,) = k8s.get_json("bschema", "-n", ns)["items"]
    status = resource["status"]
    assert (status["phase"], status["currentVersion"]) == ("Ready", LATEST - 1)
    assert history(pg_server, database) == [(v, "applied") for v in range(1, LATEST)]

    release("upgrade", LATEST)
    status = k8s.get_json("bschema", resource["metadata"]["name"], "-n", ns)["status"]
    assert (status["phase"], status["currentVersion"]) == ("Ready", LATEST)
    assert status["lastBackup"]["skipped"] is False
    assert history(pg_server, database) == [(v, "applied") for v in range(1, LATEST + 1)]
    assert len(list(backup_volume.glob("**/manifest.json"))) == 1


def test_a_config_key_missing_from_the_secret_fails_with_a_message_naming_it(
    installed: Installed, pg_server: Server, tmp_path: Path
) -> None:
    """A kubelet cannot mount a Secret item whose key is missing: the pod would wait in ContainerCreating
    with only a FailedMount Event to say why. The run must end with a status that names the key."""
    k8s, ns = installed.k8s, installed.namespace
    config_secret(k8s, ns, pg_server, tmp_path)
    body = schema("analytics", LATEST)
    body["spec"]["backup"] = {"mode": "Skip"}
    body["spec"]["configSecretRef"]["key"] = "nope.yml"
    k8s.apply(json.dumps(body), ns).check_returncode()

    def ended() -> dict[str, Any] | None:
        status: dict[str, Any] = (k8s.get_json("bschema", "analytics", "-n", ns) or {}).get("status") or {}
        return status if status.get("phase") == "Failed" else None

    try:
        status = wait_for(ended, timeout=120, what="analytics to fail", interval=0.5)
    except WaitTimeout as exc:
        seen = (k8s.get_json("bschema", "analytics", "-n", ns) or {}).get("status")
        raise AssertionError(f"{exc}\nstatus: {json.dumps(seen)}{describe(k8s, ns)}") from None
    assert "nope.yml" in status["message"] and SECRET in status["message"], status["message"]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Stalled"][0] == "True"


def test_a_job_killed_for_its_memory_limit_says_so(installed: Installed, pg_server: Server, tmp_path: Path) -> None:
    """Under a memory limit too small for Python, the kernel kills the Job's container (cgroup OOM):
    the status names OOMKilled and the setting to raise, not only an exit code."""
    k8s, ns = installed.k8s, installed.namespace
    config_secret(k8s, ns, pg_server, tmp_path)
    body = schema("analytics", LATEST)
    body["spec"]["backup"] = {"mode": "Skip"}
    body["spec"]["backoffLimit"] = 0
    body["spec"]["jobTemplate"] = {"resources": {"requests": {"memory": "16Mi"}, "limits": {"memory": "16Mi"}}}
    k8s.apply(json.dumps(body), ns).check_returncode()

    def told() -> dict[str, Any] | None:
        status: dict[str, Any] = (k8s.get_json("bschema", "analytics", "-n", ns) or {}).get("status") or {}
        return status if "OOMKilled" in str(status.get("message")) else None

    try:
        status = wait_for(told, timeout=120, what="analytics to report OOMKilled", interval=0.5)
    except WaitTimeout as exc:
        seen = (k8s.get_json("bschema", "analytics", "-n", ns) or {}).get("status")
        raise AssertionError(f"{exc}\nstatus: {json.dumps(seen)}{describe(k8s, ns)}") from None
    assert "spec.jobTemplate.resources.limits.memory" in status["message"]
    assert status["phase"] != "Ready"
    pods = k8s.get_json("pods", "-n", ns)["items"]
    assert any(p["status"]["containerStatuses"][0]["state"].get("terminated", {}).get("reason") == "OOMKilled" for p in pods)


def test_operator_pod_deleted_mid_run_the_new_pod_adopts_the_running_job(
    installed: Installed, pg_server: Server, tmp_path: Path
) -> None:
    """The migrate Job waits for the engine's advisory lock, held here; meanwhile the operator's pod is
    deleted. The Deployment's new pod adopts the run: one migrate Job, and Ready once the lock is let go."""
    import zlib

    import psycopg2

    from baselinr.storage.dialects import LOCK_NAME

    k8s, ns = installed.k8s, installed.namespace
    database = config_secret(k8s, ns, pg_server, tmp_path)
    holder = psycopg2.connect(
        host=pg_server.host, port=pg_server.port, user=pg_server.user, password=pg_server.password, dbname=database
    )
    holder.autocommit = True
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (zlib.crc32(f"{LOCK_NAME}:public".encode()),))
        body = schema("analytics", LATEST)
        body["spec"]["backup"] = {"mode": "Skip"}
        k8s.apply(json.dumps(body), ns).check_returncode()
        job = f"analytics-migrate-v{LATEST}-1"

        def job_running() -> bool:
            pods = k8s.get_json("pods", "-n", ns, "-l", f"job-name={job}")["items"]
            return any(p["status"].get("phase") == "Running" for p in pods)

        wait_for(job_running, timeout=120, what=f"{job}'s pod running (waiting for the lock)")
        (old,) = k8s.get_json("pods", "-n", installed.operator_namespace)["items"]
        k8s.kubectl("delete", "pod", old["metadata"]["name"], "-n", installed.operator_namespace, "--wait=false", check=True)

        def new_operator_running() -> bool:
            pods = k8s.get_json("pods", "-n", installed.operator_namespace)["items"]
            return any(p["metadata"]["name"] != old["metadata"]["name"] and p["status"].get("phase") == "Running" for p in pods)

        wait_for(new_operator_running, timeout=120, what="the Deployment's new operator pod running")
        assert job_running()  # still waiting: the run is in progress when the new operator takes it up
    finally:
        holder.close()  # lets the lock go
    status = wait_ready(installed, "analytics", LATEST)
    assert status["lastMigration"]["job"] == job
    assert sorted(j["metadata"]["name"] for j in k8s.get_json("jobs", "-n", ns)["items"]) == [job]
    assert history(pg_server, database) == [(v, "applied") for v in range(1, LATEST + 1)]
