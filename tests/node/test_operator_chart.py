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
from pathlib import Path
from typing import Any

import pytest
import yaml

from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION as LATEST
from tests.e2e.waiting import WaitTimeout, wait_for
from tests.helm.helm import SCHEMA_CHART
from tests.support.servers import Server

from .chart import CLAIM, SECRET, Installed, config_secret, describe, history, schema, wait_ready
from .images import IMAGE
from .node import NODE_NAME

CRD = "baselinrschemas.baselinr.io"

pytestmark = pytest.mark.node


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_operator_from_chart_backs_up_and_migrates_in_restricted_pods(
    dialect: str, installed: Installed, backup_volume: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    k8s, ns = installed.k8s, installed.namespace
    server: Server = request.getfixturevalue("pg_server" if dialect == "postgres" else "mysql_server")
    database = config_secret(k8s, ns, server, tmp_path)

    # The operator's own pods (the chart's two replicas, one holding the Lease): our image, the chart's
    # service account, admitted under "restricted".
    pods = installed.pods()
    assert len(pods) == 2
    for operator_pod in pods:
        assert operator_pod["spec"]["serviceAccountName"] == installed.release
        assert operator_pod["status"]["containerStatuses"][0]["imageID"]  # containerd ran it
    assert installed.leader() in {p["metadata"]["name"] for p in pods}

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
