"""Operator scenarios whose outcome depends on what runs in the Job's pod, on a real node: the
engine's lock-wait line read back through the kubelet's ``pods/log``, credentials the database
refuses, a drift found by a validate pod, a required backup the engine refuses, and pods the kubelet
cannot start (an image it cannot pull, a Secret key an env var names that is not there).

One operator, installed by ``helm install`` of its chart with its defaults (two replicas, cluster-wide
RBAC: ``module_operator`` in ``conftest.py``), serves every test of this module; each test has its own
restricted namespace, database and config Secret. Jobs run as pods of our image with the engine's own
migrations.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION as LATEST
from tests.e2e.cluster import Cluster
from tests.e2e.waiting import wait_for
from tests.support.servers import Server

from .chart import (
    SECRET,
    Installed,
    conditions,
    config_secret,
    connect,
    describe,
    history,
    local_volume,
    schema,
    status_of,
    wait_ready,
    wait_status,
    write_config_secret,
)
from .images import IMAGE

pytestmark = pytest.mark.node

SKIP = {"backup": {"mode": "Skip"}}
# An image no registry serves: the kubelet's pull is refused on loopback (no traffic leaves the machine).
ABSENT_IMAGE = "127.0.0.1:1/baselinr:absent"


def names_of_jobs(k8s: Cluster, namespace: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in k8s.get_json("jobs", "-n", namespace)["items"])


def events_of(k8s: Cluster, namespace: str, reason: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = k8s.get_json("events", "-n", namespace)["items"]
    return [e for e in items if e["involvedObject"].get("kind") == "BaselinrSchema" and e["reason"] == reason]


def test_status_names_the_lock_holder_from_the_kubelets_log_while_the_migrate_pod_waits(
    installed: Installed, namespace: str, pg_server: Server, tmp_path: Path
) -> None:
    """A dashboard's open transaction has read ``baselinr_rca_results``, which the latest migration rebuilds:
    the engine's DDL lock guard times out and retries, one line per retry in the pod's log; the operator
    reads that log through the API server (served by the kubelet) and names the reader's backend pid."""
    k8s, op = installed.k8s, installed
    database = config_secret(k8s, namespace, pg_server, tmp_path)
    k8s.apply(json.dumps(schema("locked", LATEST - 1, **SKIP)), namespace).check_returncode()
    wait_ready(op, "locked", LATEST - 1, namespace=namespace)
    dashboard = connect(pg_server, database, application_name="dashboard")
    pid = dashboard.get_backend_pid()
    with dashboard.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM baselinr_rca_results")
    try:
        k8s.kubectl("patch", "bschema", "locked", "-n", namespace, "--type=merge", "-p",
                    json.dumps({"spec": {"targetVersion": LATEST}}), check=True)  # fmt: skip
        waiting = wait_status(op, namespace, "locked", lambda s: bool(s.get("lockWait")), "status.lockWait", timeout=120)
        job = k8s.get_json("job", waiting["run"]["job"], "-n", namespace)
        assert not any(c["status"] == "True" for c in (job.get("status") or {}).get("conditions") or []), job["status"]
    finally:
        dashboard.rollback()
        dashboard.close()
    wait = waiting["lockWait"]
    assert wait["job"] == waiting["run"]["job"] and waiting["run"]["step"] == "Migrate"
    assert wait["heldBy"].startswith(f"PostgreSQL backend {pid} (") and "application dashboard" in wait["heldBy"], wait
    assert waiting["phase"] == "Migrating"
    assert waiting["message"] == f"Migrating to v{LATEST} (Job {wait['job']}): waiting for a lock held by {wait['heldBy']}"
    assert conditions(waiting)["Reconciling"] == ("True", "WaitingForLock")

    done = wait_ready(op, "locked", LATEST, namespace=namespace)
    assert "lockWait" not in done, json.dumps(done)
    assert done["message"] == f"At version {LATEST}"
    assert [v for v, _ in history(pg_server, database) if v == LATEST] == [LATEST]  # applied once, after its retries
    (event,) = events_of(k8s, namespace, "WaitingForLock")
    assert f"PostgreSQL backend {pid} " in event["message"]


@pytest.mark.parametrize("backup", ["Skip", "Optional"])
def test_a_wrong_password_stalls_after_one_job_and_a_fixed_secret_runs_on_retry(
    backup: str, installed: Installed, namespace: str, pg_server: Server, tmp_path: Path
) -> None:
    """Refused credentials are not retried (an account lockout waits behind that): one pod, Stalled with the
    engine's message, no password anywhere; the fixed Secret and the retry annotation run it to Ready. With an
    Optional backup, the refused backup Job ends the run too: the migration would try the same credentials."""
    k8s, op = installed.k8s, installed
    database = pg_server.create_database("node")
    wrong = "not-the-Password-4f7a"
    write_config_secret(k8s, namespace, {**pg_server.connection(database), "password": wrong}, tmp_path)
    step, reason = ("migrate", "MigrationFailed") if backup == "Skip" else ("backup", "BackupFailed")
    first = f"analytics-{step}-v1-1"
    body = schema("analytics", 1)
    body["spec"]["backup"]["mode"] = backup
    with local_volume(k8s, namespace):
        k8s.apply(json.dumps(body), namespace).check_returncode()
        status = wait_status(
            op, namespace, "analytics", lambda s: conditions(s).get("Stalled") == ("True", reason), f"Stalled {reason}", 120
        )
        assert status["phase"] == "Failed", status
        assert status["message"].startswith(f"{step.capitalize()} Job {first} failed: Cannot connect to"), status
        assert "the server refused the credentials" in status["message"], status["message"]
        assert "notBefore" not in (status.get("retry") or {}), status
        seen: set[str] = set()
        for _ in range(12):  # several retry delays (2 s, 4 s): no Job is created again by itself
            seen.update(names_of_jobs(k8s, namespace))
            threading.Event().wait(0.5)
        assert seen == {first}, seen
        (pod,) = k8s.get_json("pods", "-n", namespace)["items"]
        (container,) = pod["status"]["containerStatuses"]
        assert container["image"] == IMAGE and container["state"]["terminated"]["exitCode"] == 3
        logs = k8s.kubectl("logs", "-n", namespace, pod["metadata"]["name"], check=True).stdout
        texts = {
            "status": json.dumps(status_of(k8s, namespace, "analytics")),
            "events": k8s.kubectl("get", "events", "-n", namespace, "-o", "json", check=True).stdout,
            "pods": json.dumps(pod),
            "pod log": logs,
            "operator log": op.all_logs(),
        }
        for where, text in texts.items():
            assert wrong not in text, f"the refused password leaked into {where}"

        write_config_secret(k8s, namespace, pg_server.connection(database), tmp_path)
        k8s.kubectl("annotate", "bschema", "analytics", "-n", namespace, "baselinr.io/retry=fixed-password", check=True)
        status = wait_ready(op, "analytics", 1, namespace=namespace)
    assert status["lastMigration"]["job"] == "analytics-migrate-v1-2"
    assert history(pg_server, database) == [(1, "applied")]


def test_a_validate_pod_finds_drift_and_nothing_is_applied(
    installed: Installed, namespace: str, mysql_server: Server, tmp_path: Path
) -> None:
    """The periodic validate Job, a pod of our image, finds a table dropped by hand (MariaDB): Failed with
    valid=false and the table named; no other Job runs."""
    k8s, op = installed.k8s, installed
    database = config_secret(k8s, namespace, mysql_server, tmp_path)
    k8s.apply(json.dumps(schema("analytics", LATEST, validateInterval="3s", **SKIP)), namespace).check_returncode()
    wait_ready(op, "analytics", LATEST, namespace=namespace)
    wait_for(lambda: any("-validate-" in n for n in names_of_jobs(k8s, namespace)), timeout=90, what="a validate Job")
    conn = connect(mysql_server, database)
    try:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE baselinr_events")
    finally:
        conn.close()
    status = wait_status(
        op, namespace, "analytics", lambda s: s.get("phase") == "Failed" and s.get("valid") is False, "Failed, valid=false", 120
    )
    assert conditions(status)["Validated"] == ("False", "ValidationFailed")
    assert "baselinr_events" in " ".join(status["validation"]["errors"])
    assert status["currentVersion"] == LATEST
    assert [n for n in names_of_jobs(k8s, namespace) if "-validate-" not in n] == [f"analytics-migrate-v{LATEST}-1"]
    assert events_of(k8s, namespace, "ValidationFailed")


def test_a_required_backup_the_engine_refuses_runs_no_migration(
    installed: Installed, namespace: str, pg_server: Server, tmp_path: Path
) -> None:
    """A table no migration made (``baselinr_by_hand``) is in the database: the backup pod refuses to take a
    backup that a restore could not bring back, names the table and the flag that leaves it out; no
    migrate Job runs and nothing is published on the volume."""
    k8s, op = installed.k8s, installed
    database = config_secret(k8s, namespace, pg_server, tmp_path)
    with local_volume(k8s, namespace) as volume:
        k8s.apply(json.dumps(schema("analytics", LATEST - 1, **SKIP)), namespace).check_returncode()
        wait_ready(op, "analytics", LATEST - 1, namespace=namespace)
        conn = connect(pg_server, database)
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE baselinr_by_hand (id INTEGER)")
            cur.execute("INSERT INTO baselinr_by_hand VALUES (1)")
        conn.close()
        required = schema("x", LATEST)["spec"]["backup"]
        patch = {"spec": {"targetVersion": LATEST, "backup": required}}
        k8s.kubectl("patch", "bschema", "analytics", "-n", namespace, "--type=merge", "-p", json.dumps(patch), check=True)
        status = wait_status(op, namespace, "analytics", lambda s: s.get("phase") == "Failed", "analytics Failed")
        assert conditions(status)["BackedUp"] == ("False", "BackupFailed")
        assert "baselinr_by_hand" in status["message"] and "--exclude-table baselinr_by_hand" in status["message"]
        assert status["currentVersion"] == LATEST - 1
        assert not [n for n in names_of_jobs(k8s, namespace) if f"-migrate-v{LATEST}-" in n]
        assert history(pg_server, database) == [(v, "applied") for v in range(1, LATEST)]
        assert not list(volume.glob("**/manifest.json"))  # nothing published


@pytest.mark.parametrize("cause", ["image", "env-key"])
def test_a_pod_the_kubelet_cannot_start_is_reported_at_once_and_a_fixed_spec_runs(
    cause: str, installed: Installed, namespace: str, pg_server: Server, tmp_path: Path
) -> None:
    """The kubelet's own reasons: an image it cannot pull (ErrImagePull / ImagePullBackOff, which may clear, so
    the run waits and says why) and an env var naming a key the Secret lacks (CreateContainerConfigError, a
    configuration error: Stalled). Either way the status says it within a minute, and the fixed spec
    supersedes the stuck run."""
    k8s, op = installed.k8s, installed
    database = config_secret(k8s, namespace, pg_server, tmp_path)
    body = schema("analytics", 1, **SKIP)
    expected: tuple[str, ...]
    if cause == "image":
        body["spec"]["image"] = ABSENT_IMAGE
        expected, said = ("ErrImagePull", "ImagePullBackOff"), ABSENT_IMAGE
    else:
        key_ref = {"secretKeyRef": {"name": SECRET, "key": "password"}}
        body["spec"]["jobTemplate"] = {"env": [{"name": "DB_PASSWORD", "valueFrom": key_ref}]}
        expected, said = ("CreateContainerConfigError",), f"couldn't find key password in Secret {namespace}/{SECRET}"
    k8s.apply(json.dumps(body), namespace).check_returncode()
    status = wait_status(
        op, namespace, "analytics", lambda s: any(r in str(s.get("message")) for r in expected), f"{expected} in the status", 90
    )
    assert said in status["message"], status["message"]
    assert conditions(status)["Reconciling"] == ("True", "PodNotStarting") or conditions(status).get("Stalled") == (
        "True",
        "PodCannotStart",
    ), status
    assert events_of(k8s, namespace, "PodNotStarting"), describe(k8s, namespace)
    if cause == "env-key":
        status = wait_status(
            op, namespace, "analytics", lambda s: conditions(s).get("Stalled") == ("True", "PodCannotStart"), "Stalled", 120
        )
        assert "Migrate Job analytics-migrate-v1-1 cannot start" in status["message"], status["message"]
        assert "notBefore" not in (status.get("retry") or {})  # a configuration error is not retried by itself
        fix: dict[str, Any] = {"spec": {"jobTemplate": {"env": None}}}
    else:
        fix = {"spec": {"image": None}}
    k8s.kubectl("patch", "bschema", "analytics", "-n", namespace, "--type=merge", "-p", json.dumps(fix), check=True)
    status = wait_ready(op, "analytics", 1, namespace=namespace)
    assert status["lastMigration"]["job"] == "analytics-migrate-v1-2"
    wait_for(lambda: names_of_jobs(k8s, namespace) == ["analytics-migrate-v1-2"], timeout=60, what="the stuck Job deleted")
    assert history(pg_server, database) == [(1, "applied")]
    if cause == "image":  # the waiting run was still in progress: the new spec superseded it
        assert any("analytics-migrate-v1-1" in e["message"] for e in events_of(k8s, namespace, "Superseded"))


def test_a_backup_to_object_storage_the_operator_does_not_allow_is_refused(
    installed: Installed, namespace: str, pg_server: Server, tmp_path: Path
) -> None:
    """The chart's default ``allowedVolumeKinds`` (a PVC only): a spec naming a bucket stalls, and no Job runs."""
    k8s, op = installed.k8s, installed
    config_secret(k8s, namespace, pg_server, tmp_path)
    store = {"bucket": "team-backups", "endpoint": "http://127.0.0.1:1"}  # never dialled: refused before any Job
    k8s.apply(json.dumps(schema("analytics", LATEST, backup={"mode": "Required", "objectStore": store})), namespace)
    status = wait_status(
        op, namespace, "analytics", lambda s: conditions(s).get("Stalled", ("", ""))[0] == "True", "Stalled", 90
    )
    assert "objectStore" in status["message"], status["message"]
    assert names_of_jobs(k8s, namespace) == []
