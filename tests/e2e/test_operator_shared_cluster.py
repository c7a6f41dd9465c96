"""The operator in a cluster shared by teams, on a real control plane with real Jobs against PostgreSQL:
someone who may only edit BaselinrSchemas gets no Job beyond the operator's settings and reads no Secret
through the status; a failed upgrade can be taken back; Ready only at the current generation's target;
a Job deleted by hand or refused by the API server never leaves a resource stuck; Events and metrics of the
operator's own scheduled reconciles are posted; refused credentials are not retried into an account lockout."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.packages import sql_migration
from tests.support.servers import Server

from .cluster import Cluster
from .operator_support import (
    Setup,
    install_crd,
    make_setup,
    operator,
    service_account_kubeconfig,
)
from .waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]

SKIP_BACKUP = {"backup": {"mode": "Skip"}}


@pytest.fixture(scope="module")
def crd(k8s: Cluster) -> None:
    install_crd(k8s)


@pytest.fixture
def make(k8s: Cluster, namespace: str, pg_server: Server, tmp_path: Path, crd: None) -> Iterator[Any]:
    made: list[Setup] = []

    def factory(versions: dict[int, str] | None = None) -> Setup:
        made.append(make_setup(k8s, namespace, pg_server, tmp_path, versions))
        return made[-1]

    yield factory
    for s in made:
        s.close()
    gc.collect()


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


def wait_stalled(setup: Setup, name: str, reason: str, timeout: float = 60) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        s = setup.status(name)
        return s if conditions(s).get("Stalled") == ("True", reason) else None

    return wait_for(probe, timeout=timeout, what=f"{name} to be Stalled with {reason}", interval=0.3)


def warnings(setup: Setup, name: str, reason: str) -> list[str]:
    return [e["message"] for e in setup.events(name) if e["type"] == "Warning" and e["reason"] == reason]


def editor_kubeconfig(k8s: Cluster, namespace: str, path: Path) -> Path:
    """A user who may edit BaselinrSchemas in ``namespace`` and nothing else (no Pods, Jobs or Secrets)."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "schema-editor"},
        "rules": [{"apiGroups": ["baselinr.io"], "resources": ["baselinrschemas"], "verbs": ["*"]}],
    }  # fmt: skip
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "schema-editor"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "schema-editor"},
        "subjects": [{"kind": "ServiceAccount", "name": "editor", "namespace": namespace}],
    }  # fmt: skip
    k8s.kubectl("create", "serviceaccount", "editor", "-n", namespace, check=True)
    k8s.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all([role, binding]), check=True)
    account = f"system:serviceaccount:{namespace}:editor"
    for verb, resource in [("create", "pods"), ("create", "jobs"), ("get", "secrets"), ("create", "serviceaccounts/token")]:
        answer = k8s.kubectl("auth", "can-i", verb, resource, "-n", namespace, f"--as={account}").stdout.strip()
        assert answer == "no", f"the editor may {verb} {resource}"
    return service_account_kubeconfig(k8s, namespace, "editor", path)


def as_user(k8s: Cluster, kubeconfig: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([k8s.kubectl_bin, f"--kubeconfig={kubeconfig}", *args], input=input, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


# --- 1. no confused deputy ---------------------------------------------------------------------------------


def test_a_schema_editor_gets_no_job_beyond_the_operators_settings(make: Any, monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    setup: Setup = make()
    k8s, ns = setup.k8s, setup.namespace
    editor = editor_kubeconfig(k8s, ns, tmp_path / "editor.kubeconfig")
    manifest = setup.schema("analytics", 1)
    manifest["spec"]["image"] = "docker.io/library/busybox:latest"
    manifest["spec"]["backup"] = {"mode": "Required", "volume": {"hostPath": {"path": "/"}}}
    manifest["spec"]["jobTemplate"].update(
        serviceAccountName="admin",
        podSecurityContext={"runAsUser": 0, "runAsNonRoot": False},
        securityContext={"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}},
    )
    manifest["spec"]["jobTemplate"]["env"].append(
        {"name": "STOLEN", "valueFrom": {"secretKeyRef": {"name": "team-b-db", "key": "password"}}}
    )
    with operator(k8s, ns, monkeypatch, BASELINR_OPERATOR_ALLOWED_VOLUME_KINDS="persistentVolumeClaim") as runner:
        applied = as_user(k8s, editor, "apply", "-n", ns, "-f", "-", input=json.dumps(manifest))
        assert applied.returncode == 0, applied.stderr
        status = wait_stalled(setup, "analytics", "NotAllowed")
        assert status["phase"] == "Failed" and status["observedGeneration"] == 1
        for refused in (
            "spec.image 'docker.io/library/busybox:latest' is not from an allowed repository (baselinr)",
            "serviceAccountName 'admin' is not an allowed ServiceAccount (allowed: none)",
            "spec.backup.volume of kind hostPath is not allowed (allowed: persistentVolumeClaim)",
            "podSecurityContext.runAsUser must be a user or group id of at least 1",
            "podSecurityContext.runAsNonRoot must be true",
            "securityContext.privileged must be false",
            "securityContext.capabilities must be only drop",
            "env[2].valueFrom.secretKeyRef may only name the config Secret 'baselinr-storage'",
        ):
            assert refused in status["message"], status["message"]
        assert setup.jobs() == []
        assert len(warnings(setup, "analytics", "NotAllowed")) == 1

        # The editor fixes the spec: the operator picks it up, and its Jobs keep the restricted profile.
        env = setup.schema("x", 1)["spec"]["jobTemplate"]["env"]
        template = {"serviceAccountName": None, "podSecurityContext": {"runAsUser": 20000, "runAsNonRoot": None},
                    "securityContext": None, "env": env}
        fix = {"spec": {"image": "baselinr:test", "backup": {"mode": "Skip", "volume": None}, "jobTemplate": template}}
        patched = as_user(k8s, editor, "patch", "bschema", "analytics", "-n", ns, "--type=merge", "-p", json.dumps(fix))
        assert patched.returncode == 0, patched.stderr
        status = setup.wait_phase("analytics", "Ready", currentVersion=1, observedGeneration=2)
        (job,) = setup.jobs()
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["securityContext"] == {"runAsUser": 20000, "runAsGroup": 10001, "fsGroup": 10001,
                                          "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "privileged": False,
                                                "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                                "capabilities": {"drop": ["ALL"]}}  # fmt: skip
        assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
        assert container["terminationMessagePolicy"] == "File"
        assert [v["name"] for v in pod["volumes"]] == ["config", "tmp"]
    assert runner.exception is None, runner.output


def test_another_teams_secret_never_comes_back_in_the_status(make: Any, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:  # fmt: skip
    """The resource names a Secret its editor cannot read, and the Job prints what it mounted and dies
    without a result: nothing of it reaches the status or the Events, only the Job's own failure."""
    canary = "team-b-s3cr3t-canary"
    # Stands for anything in the image that prints what it read and dies (a crash, a debug print).
    leaky = ("import json, os, sys\n"
             "config = json.loads(os.environ['NODE_AGENT_PATH_MAP'])['/etc/baselinr'] + '/config.yml'\n"
             "sys.stdout.write(open(config).read()); sys.stdout.flush(); os._exit(1)\n")  # fmt: skip
    setup: Setup = make({2: leaky + sql_migration(2, "SELECT 1")})
    k8s, ns = setup.k8s, setup.namespace
    config = tmp_path / "team-b.yml"
    config.write_text(yaml.safe_dump({"storage": {"connection": setup.server.connection(setup.database)},
                                      "team_b_api_token": canary}))  # fmt: skip
    k8s.kubectl("create", "secret", "generic", "team-b-db", "-n", ns, f"--from-file=config.yml={config}", check=True)
    manifest = setup.schema("analytics", 2, **SKIP_BACKUP)
    manifest["spec"]["configSecretRef"] = {"name": "team-b-db"}
    with operator(k8s, ns, monkeypatch, BASELINR_OPERATOR_RETRY_LIMIT="0") as runner:
        setup.apply(manifest).check_returncode()
        status = setup.wait_phase("analytics", "Failed")
        assert "without writing a result" in status["message"], status["message"]
        pods = k8s.get_json("pods", "-n", ns)["items"]
        assert pods and all(c["state"]["terminated"]["exitCode"] == 1 for p in pods for c in p["status"]["containerStatuses"])
        texts = {"status": json.dumps(setup.get("analytics")), "events": json.dumps(setup.events()),
                 "pods": json.dumps(pods)}  # fmt: skip
    texts["operator log"] = runner.output
    for where, text in texts.items():
        assert canary not in text, f"the other team's Secret leaked into {where}"
    assert runner.exception is None, runner.output


# --- 2. a way back after a failed upgrade -------------------------------------------------------------------


def test_a_failed_upgrade_can_be_taken_back_without_allow_downgrade(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    broken_v3 = {
        2: sql_migration(2, "CREATE TABLE op_two (id INTEGER PRIMARY KEY)", "DROP TABLE op_two"),
        3: sql_migration(3, "ALTER TABLE op_missing ADD COLUMN x INTEGER", None, "Broken on purpose"),
    }
    setup: Setup = make(broken_v3)
    k8s, ns = setup.k8s, setup.namespace
    with operator(k8s, ns, monkeypatch) as runner:
        setup.apply(setup.schema("analytics", 2, **SKIP_BACKUP)).check_returncode()
        setup.wait_phase("analytics", "Ready", currentVersion=2)
        setup.patch("analytics", {"spec": {"targetVersion": 3}}).check_returncode()
        setup.wait_phase("analytics", "Failed", currentVersion=2)
        # Back to the version the database is at, as the previous release's Helm hook would (server-side apply).
        spec = {k: v for k, v in setup.schema("analytics", 2, **SKIP_BACKUP)["spec"].items() if k != "targetVersion"}
        back = subprocess.run(
            [sys.executable, "-m", "baselinr_operator.waiter", "wait", "analytics", "-n", ns, "--target", "2", "--apply",
             "--timeout", "90"],
            env={**os.environ, "KUBECONFIG": str(k8s.kubeconfig), "BASELINR_SCHEMA_SPEC": json.dumps(spec)},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert back.returncode == 0, back.stdout + back.stderr
        status = setup.status("analytics")
        assert (status["phase"], status["currentVersion"], status["targetVersion"]) == ("Ready", 2, 2)
        assert conditions(status)["Ready"] == ("True", "AtTargetVersion")
        assert setup.history() == [(1, "applied"), (2, "applied")]
        # Below the database's version is still a downgrade: refused without allowDowngrade.
        lower = setup.patch("analytics", {"spec": {"targetVersion": 1}})
        assert lower.returncode != 0 and "spec.targetVersion is below status.currentVersion" in lower.stderr
        assert setup.patch("analytics", {"spec": {"targetVersion": 3}}).returncode == 0  # and up again, any time
    assert runner.exception is None, runner.output


# --- 3. Ready only at this generation's target --------------------------------------------------------------


def test_ready_waits_for_the_new_target_when_it_changes_during_a_run(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = {
        2: sql_migration(2, "SELECT pg_sleep(5); CREATE TABLE op_two (id INTEGER PRIMARY KEY)", "DROP TABLE op_two"),
        3: sql_migration(3, "CREATE TABLE op_three (id INTEGER PRIMARY KEY)", "DROP TABLE op_three"),
    }
    setup: Setup = make(slow)
    k8s, ns = setup.k8s, setup.namespace
    early: list[dict[str, Any]] = []
    stop = threading.Event()

    def watch() -> None:  # every status seen: Ready=True must mean "at this generation's target"
        while not stop.is_set():
            obj = setup.get("analytics") or {}
            s = obj.get("status") or {}
            ready = next((c for c in s.get("conditions") or [] if c["type"] == "Ready"), None)
            if ready and ready["status"] == "True" and s.get("currentVersion") != obj["spec"]["targetVersion"]:
                early.append(s)
            stop.wait(0.2)

    with operator(k8s, ns, monkeypatch) as runner:
        setup.apply(setup.schema("analytics", 2, **SKIP_BACKUP)).check_returncode()
        setup.wait_phase("analytics", "Migrating")
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        setup.patch("analytics", {"spec": {"targetVersion": 3}}).check_returncode()
        waited = k8s.kubectl("wait", "--for=condition=Ready", "bschema/analytics", "-n", ns, "--timeout=120s", timeout=140)
        status = setup.status("analytics")
        stop.set()
        watcher.join()
        assert waited.returncode == 0, waited.stderr
        assert status["currentVersion"] == 3, f"kubectl wait returned at v{status.get('currentVersion')}"
        assert early == [], f"Ready=True while the database was below the target: {early[0]}"
        assert status["observedGeneration"] == 2 and conditions(status)["Ready"] == ("True", "AtTargetVersion")
        assert setup.job_names() == ["analytics-migrate-v2-1", "analytics-migrate-v3-2"]
    assert runner.exception is None, runner.output


# --- 4. a Job deleted by hand ------------------------------------------------------------------------------


def test_a_job_deleted_by_hand_fails_the_run_at_once_and_a_retry_runs_it(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = {2: sql_migration(2, "SELECT pg_sleep(8); CREATE TABLE op_two (id INTEGER PRIMARY KEY)", "DROP TABLE op_two")}
    setup: Setup = make(slow)
    k8s, ns = setup.k8s, setup.namespace
    with operator(k8s, ns, monkeypatch) as runner:
        setup.apply(setup.schema("analytics", 2, **SKIP_BACKUP)).check_returncode()
        wait_for(lambda: (k8s.get_json("job", "analytics-migrate-v2-1", "-n", ns) or {}).get("status", {}).get("active"),
                 timeout=60, what="the migrate Job running")  # fmt: skip
        k8s.kubectl("delete", "job", "analytics-migrate-v2-1", "-n", ns, "--wait=false", check=True)
        status = wait_stalled(setup, "analytics", "JobDeleted", timeout=20)
        assert status["phase"] == "Failed" and "Migrate Job analytics-migrate-v2-1 was deleted" in status["message"]
        assert "baselinr.io/retry" in status["message"]
        assert warnings(setup, "analytics", "JobDeleted")
        assert setup.job_names() == []  # not re-created behind the back of whoever deleted it
        k8s.kubectl("annotate", "bschema", "analytics", "-n", ns, "baselinr.io/retry=after-delete", check=True)
        status = setup.wait_phase("analytics", "Ready", currentVersion=2)
        assert status["lastMigration"]["job"] == "analytics-migrate-v2-2"
    assert runner.exception is None, runner.output


# --- 5. a Job the API server rejects ------------------------------------------------------------------------


def test_a_rejected_job_stalls_frees_the_database_and_a_fixed_spec_runs(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    setup: Setup = make()
    k8s, ns = setup.k8s, setup.namespace
    bad = setup.schema("analytics", 1, **SKIP_BACKUP)
    bad["spec"]["jobTemplate"]["env"].append({"name": "BAD", "value": 1})  # the CRD keeps env free-form; a Job cannot
    with operator(k8s, ns, monkeypatch) as runner:
        setup.apply(bad).check_returncode()
        status = wait_stalled(setup, "analytics", "JobRejected")
        assert status["phase"] == "Failed" and status["run"]["step"] == "Failed"
        assert "The API server rejected migrate Job analytics-migrate-v1-1" in status["message"]
        assert "EnvVar" in status["message"] or "env" in status["message"], status["message"]
        assert setup.jobs() == []
        (event,) = warnings(setup, "analytics", "JobRejected")
        assert "analytics-migrate-v1-1" in event
        assert not [e for e in setup.events("analytics") if e["reason"] == "MigrationRunning"]
        # Another resource on the same database is not blocked by it.
        setup.apply(setup.schema("other", 1, **SKIP_BACKUP)).check_returncode()
        setup.wait_phase("other", "Ready", currentVersion=1)
        # The fixed spec is picked up.
        env = setup.schema("x", 1)["spec"]["jobTemplate"]["env"]
        setup.patch("analytics", {"spec": {"jobTemplate": {"env": env}}}).check_returncode()
        setup.wait_phase("analytics", "Ready", currentVersion=1, observedGeneration=2)
    assert runner.exception is None, runner.output


# --- 6. Events and metrics of scheduled reconciles ----------------------------------------------------------


def test_scheduled_retries_post_their_events_and_metrics(make: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from prometheus_client import REGISTRY

    from .operator_support import free_port

    setup: Setup = make()
    k8s, ns = setup.k8s, setup.namespace
    config = tmp_path / "unreachable.yml"
    config.write_text(yaml.safe_dump({"storage": {"connection": {**setup.server.connection(setup.database),
                                                                 "port": free_port()}}}))  # fmt: skip
    k8s.kubectl("create", "secret", "generic", "unreachable", "-n", ns, f"--from-file=config.yml={config}", check=True)
    manifest = setup.schema("analytics", 1, **SKIP_BACKUP)
    manifest["spec"]["configSecretRef"] = {"name": "unreachable"}
    labels = {"step": "migrate", "result": "failed"}
    before = REGISTRY.get_sample_value("baselinr_operator_jobs_total", labels) or 0.0
    with operator(k8s, ns, monkeypatch, BASELINR_OPERATOR_RETRY_LIMIT="1") as runner:
        setup.apply(manifest).check_returncode()
        wait_stalled(setup, "analytics", "RetriesExhausted", timeout=120)
        started = [e["message"] for e in setup.events("analytics") if e["reason"] == "MigrationRunning"]
        assert any("analytics-migrate-v1-2" in m for m in started), started  # posted by the scheduler's reconcile
        assert len(warnings(setup, "analytics", "MigrationFailed")) == 2
    after = REGISTRY.get_sample_value("baselinr_operator_jobs_total", labels) or 0.0
    assert after - before == 2
    assert runner.exception is None, runner.output


# --- 8. the Helm hook can ask for a retry -----------------------------------------------------------------


def wait_command(k8s: Cluster, ns: str, spec: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    """``baselinr-schema wait`` as the hook runs it (server-side apply of the spec, then wait)."""
    env = {**os.environ, "KUBECONFIG": str(k8s.kubeconfig), "BASELINR_SCHEMA_SPEC": json.dumps(spec)}
    return subprocess.run([sys.executable, "-m", "baselinr_operator.waiter", "wait", *args, "-n", ns, "--apply"],
                          env=env, capture_output=True, text=True, timeout=150)  # fmt: skip


def test_the_hook_retries_a_failed_run_when_its_retry_value_changes(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from .operator_support import broken_v2

    setup: Setup = make(broken_v2())
    k8s, ns = setup.k8s, setup.namespace
    spec = {k: v for k, v in setup.schema("analytics", 2, **SKIP_BACKUP)["spec"].items() if k != "targetVersion"}
    with operator(k8s, ns, monkeypatch) as runner:
        first = wait_command(k8s, ns, spec, "analytics", "--target", "2", "--timeout", "90", "--retry", "1")
        assert first.returncode == 4 and 'relation "op_missing" does not exist' in first.stderr, first.stdout + first.stderr
        import psycopg2

        conn = psycopg2.connect(host=setup.server.host, port=setup.server.port, user=setup.server.user,
                                password=setup.password, dbname=setup.database)  # fmt: skip
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE op_missing (id INTEGER)")  # the cause, fixed by hand
        conn.close()
        same = wait_command(k8s, ns, spec, "analytics", "--target", "2", "--timeout", "30", "--retry", "1")
        assert same.returncode == 4, same.stdout + same.stderr  # the same value asks for nothing new
        again = wait_command(k8s, ns, spec, "analytics", "--target", "2", "--timeout", "90", "--retry", "2")
        assert again.returncode == 0, again.stdout + again.stderr
        status = setup.status("analytics")
        assert status["retryToken"] == "2" and status["lastMigration"]["job"] == "analytics-migrate-v2-2"
    assert runner.exception is None, runner.output


# --- 9. old Jobs are cleaned up ---------------------------------------------------------------------------


def test_only_the_newest_finished_jobs_are_kept(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    setup: Setup = make()
    k8s, ns = setup.k8s, setup.namespace
    with operator(k8s, ns, monkeypatch, BASELINR_OPERATOR_KEEP_JOBS="2") as runner:
        setup.apply(setup.schema("analytics", 1, validateInterval="1s", **SKIP_BACKUP)).check_returncode()
        wait_for(lambda: (setup.status("analytics").get("run") or {}).get("id", 0) >= 6, timeout=150,
                 what="six runs (a migration, then drift checks)")  # fmt: skip
        setup.patch("analytics", {"spec": {"validateInterval": None}}).check_returncode()

        def settled() -> bool:
            running = [j for j in setup.jobs() if not j.get("status", {}).get("completionTime")]
            return setup.status("analytics").get("phase") == "Ready" and not running

        def at_most_two(items: list[Any]) -> list[Any] | None:
            return items if len(items) <= 2 else None

        wait_for(settled, timeout=60, what="no Job running")
        last = int(setup.status("analytics")["run"]["id"])
        names = wait_for(lambda: at_most_two(setup.job_names()), timeout=30, what="at most 2 Jobs")
        assert names == sorted(f"analytics-validate-v1-{i}" for i in (last - 1, last)), names
        pods = wait_for(lambda: at_most_two(k8s.get_json("pods", "-n", ns)["items"]), timeout=60,
                        what="the old Jobs' Pods deleted too")  # fmt: skip
        assert {p["metadata"]["labels"]["job-name"] for p in pods} <= set(names)
    assert runner.exception is None, runner.output


# --- 10. the smaller items -------------------------------------------------------------------------------


def test_unknown_targets_rollback_events_and_suspend_at_the_target(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    setup: Setup = make()  # migrations 1..3
    k8s, ns = setup.k8s, setup.namespace
    huge = setup.apply(setup.schema("huge", 2**31, **SKIP_BACKUP))
    assert huge.returncode != 0 and "2147483647" in huge.stderr, huge.stderr
    with operator(k8s, ns, monkeypatch) as runner:
        setup.apply(setup.schema("analytics", 2)).check_returncode()
        status = setup.wait_phase("analytics", "Ready", currentVersion=2)
        assert status["codeVersion"] == 3 and status["codeImage"] == "baselinr:test"
        jobs_before = setup.job_names()
        # A version this image does not know: refused before a backup is taken.
        setup.patch("analytics", {"spec": {"targetVersion": 4}}).check_returncode()
        status = wait_stalled(setup, "analytics", "TargetAboveCodeVersion")
        assert "above v3, the latest version image baselinr:test knows" in status["message"]
        assert setup.job_names() == jobs_before
        # A rollback says it rolled back.
        setup.patch("analytics", {"spec": {"targetVersion": 1, "allowDowngrade": True}}).check_returncode()
        setup.wait_phase("analytics", "Ready", currentVersion=1)
        succeeded = [e["message"] for e in setup.events("analytics") if e["reason"] == "MigrationSucceeded"]
        assert any(m.endswith("Migrated to v1: rolled back v2") for m in succeeded), succeeded
        # Suspended at the target: still Ready.
        setup.patch("analytics", {"spec": {"suspend": True}}).check_returncode()
        status = setup.wait_phase("analytics", "Suspended", observedGeneration=4)
        assert conditions(status)["Ready"] == ("True", "AtTargetVersion")
    assert runner.exception is None, runner.output


# --- 7. pods that cannot start ----------------------------------------------------------------------------


def wait_message(setup: Setup, name: str, text: str, timeout: float = 60) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        s = setup.status(name)
        return s if text in str(s.get("message")) else None

    return wait_for(probe, timeout=timeout, what=f"{text!r} in the status message of {name}", interval=0.3)


def test_a_drift_check_that_finds_another_version_leads_to_a_run_back_to_the_target(
    make: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Decided and documented: the validate Job changes nothing; the database it finds away from the target
    (rolled back by hand) is then brought back by a run, as for any target change."""
    from tests.support.cli import run_process

    setup: Setup = make()
    k8s, ns = setup.k8s, setup.namespace
    with operator(k8s, ns, monkeypatch) as runner:
        setup.apply(setup.schema("analytics", 2, validateInterval="2s", **SKIP_BACKUP)).check_returncode()
        setup.wait_phase("analytics", "Ready", currentVersion=2)
        config = tmp_path / "by-hand.yml"
        config.write_text(yaml.safe_dump({"storage": {"connection": setup.server.connection(setup.database)}}))
        root = Path(__file__).resolve().parents[2]
        back = run_process("migrate", "rollback", "--config", str(config), "--target", "1", "--migrations", setup.package,
                           env={"PYTHONPATH": f"{setup.package_root}:{root}"})  # fmt: skip
        assert back.code == 0, back.err
        status = wait_for(lambda: (s := setup.status("analytics")) and (s.get("lastMigration") or {}).get("from") == 1 and s,
                          timeout=90, what="a run from v1 back to v2")  # fmt: skip
        assert status["lastMigration"]["to"] == 2
        setup.wait_phase("analytics", "Ready", currentVersion=2)
        names = setup.job_names()
        validates = [n for n in names if "-validate-v2-" in n]
        assert validates, names
        migrate_runs = sorted(int(n.rsplit("-", 1)[1]) for n in names if "-migrate-v2-" in n)
        assert migrate_runs[-1] > min(int(n.rsplit("-", 1)[1]) for n in validates)  # the run came after a drift check
        assert [v for v, state in setup.history() if state == "applied"].count(2) >= 1
    assert runner.exception is None, runner.output


def test_a_job_that_cannot_create_its_pod_is_reported_and_goes_on_once_it_can(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A LimitRange refuses the Pod: the Job controller's FailedCreate is in the status within a minute; it may clear."""
    setup: Setup = make()
    k8s, ns = setup.k8s, setup.namespace
    limits = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "tiny"},
              "spec": {"limits": [{"type": "Container", "max": {"memory": "1Mi"}}]}}  # fmt: skip
    k8s.apply(json.dumps(limits), ns).check_returncode()
    manifest = setup.schema("analytics", 1, **SKIP_BACKUP)
    manifest["spec"]["jobTemplate"]["resources"] = {"limits": {"memory": "256Mi"}}
    with operator(k8s, ns, monkeypatch) as runner:
        setup.apply(manifest).check_returncode()
        status = wait_message(setup, "analytics", "FailedCreate", timeout=60)
        assert status["phase"] == "Migrating" and "forbidden" in status["message"], status["message"]
        assert any("FailedCreate" in m for m in warnings(setup, "analytics", "PodNotStarting"))
        k8s.kubectl("delete", "limitrange", "tiny", "-n", ns, check=True)
        setup.wait_phase("analytics", "Ready", currentVersion=1, timeout=150)
    assert runner.exception is None, runner.output
