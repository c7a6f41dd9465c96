"""The operator when things go wrong, on a real control plane with real Jobs against PostgreSQL:
a failing migration (the engine's message, a Warning Event, fixed through the retry annotation),
a failing backup in Required mode (no migration runs; also when the database holds a
``baselinr_*`` table no migration made, which the backup refuses rather than leave out), an operator restarted mid-migration (the
running Job adopted, none duplicated), and a concurrent edit during a reconcile (still ends Ready)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run_process
from tests.support.packages import sql_migration
from tests.support.servers import Server

from .cluster import Cluster
from .operator_support import Setup, broken_v2, cluster_texts, install_crd, make_setup, no_password_anywhere, operator
from .waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]

SKIP_BACKUP = {"backup": {"mode": "Skip"}}


@pytest.fixture(scope="module")
def crd(k8s: Cluster) -> None:
    install_crd(k8s)


@pytest.fixture
def make(k8s: Cluster, namespace: str, pg_server: Server, tmp_path: Path, crd: None) -> Iterator[object]:
    made: list[Setup] = []

    def factory(versions: dict[int, str] | None = None) -> Setup:
        made.append(make_setup(k8s, namespace, pg_server, tmp_path, versions))
        return made[-1]

    yield factory
    for s in made:
        s.close()
    gc.collect()


def slow_versions(seconds: int = 6) -> dict[int, str]:
    return {
        2: sql_migration(2, f"SELECT pg_sleep({seconds}); CREATE TABLE op_two (id INTEGER PRIMARY KEY)", "DROP TABLE op_two"),
        3: sql_migration(3, "CREATE TABLE op_three (id INTEGER PRIMARY KEY)", "DROP TABLE op_three"),
    }


def test_failing_migration_reports_the_engine_message_then_retry_annotation_fixes_it(
    make: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup: Setup = make(broken_v2())  # type: ignore[operator]
    with operator(setup.k8s, setup.namespace, monkeypatch) as runner:
        setup.apply(setup.schema("analytics", 2, **SKIP_BACKUP)).check_returncode()
        status = setup.wait_phase("analytics", "Failed")
        assert "Migration v2" in status["message"] and 'relation "op_missing" does not exist' in status["message"]
        assert status["currentVersion"] == 1  # v1 applied, v2 rolled back
        conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
        assert conditions["Stalled"] == ("True", "MigrationFailed")
        assert conditions["Ready"] == ("False", "MigrationFailed")
        assert conditions["Reconciling"][0] == "False"
        assert conditions["Migrated"] == ("False", "MigrationFailed")
        warnings = [e for e in setup.events("analytics") if e["type"] == "Warning"]
        assert any(e["reason"] == "MigrationFailed" and "op_missing" in e["message"] for e in warnings)
        assert setup.job_names() == ["analytics-migrate-v2-1"]  # a permanent failure is not retried by itself
        assert setup.history() == [(1, "applied")]

        # Fix the database by hand, then ask for a retry.
        import psycopg2

        conn = psycopg2.connect(host=setup.server.host, port=setup.server.port, user=setup.server.user,
                                password=setup.password, dbname=setup.database)  # fmt: skip
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE op_missing (id INTEGER)")
        conn.close()
        setup.k8s.kubectl("annotate", "bschema", "analytics", "-n", setup.namespace, "baselinr.io/retry=1", check=True)
        status = setup.wait_phase("analytics", "Ready", currentVersion=2)
        assert status["retryToken"] == "1" and status["lastMigration"]["job"] == "analytics-migrate-v2-2"
        assert any(e["reason"] == "RetryRequested" for e in setup.events("analytics"))
        texts = cluster_texts(setup, "analytics")
    assert runner.exception is None, runner.output
    no_password_anywhere(setup, {**texts, "operator log": runner.output})


def test_failing_required_backup_runs_no_migration(make: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    setup: Setup = make()  # type: ignore[operator]
    not_a_dir = tmp_path / "not-a-directory"
    not_a_dir.write_text("a file where the backups should go\n")
    with operator(setup.k8s, setup.namespace, monkeypatch) as runner:
        # A database with Baselinr's tables, so that there is something to back up.
        setup.apply(setup.schema("analytics", 1, **SKIP_BACKUP)).check_returncode()
        setup.wait_phase("analytics", "Ready", currentVersion=1)
        backup = {"mode": "Required", "volume": {"hostPath": {"path": str(not_a_dir), "type": "File"}}}
        setup.patch("analytics", {"spec": {"targetVersion": 2, "backup": backup}}).check_returncode()
        status = setup.wait_phase("analytics", "Failed")
        conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
        assert conditions["BackedUp"] == ("False", "BackupFailed")
        assert conditions["Stalled"] == ("True", "BackupFailed")
        assert "no migration ran" in status["message"]
        assert status["currentVersion"] == 1
        assert not [n for n in setup.job_names() if "-migrate-v2-" in n]
        assert setup.history() == [(1, "applied")]
        assert any(e["type"] == "Warning" and e["reason"] == "BackupFailed" for e in setup.events("analytics"))
    assert runner.exception is None, runner.output


def test_concurrent_edit_during_reconcile_still_ends_ready(make: object, monkeypatch: pytest.MonkeyPatch) -> None:
    setup: Setup = make(slow_versions(5))  # type: ignore[operator]
    with operator(setup.k8s, setup.namespace, monkeypatch) as runner:
        setup.apply(setup.schema("analytics", 2, **SKIP_BACKUP)).check_returncode()
        setup.wait_phase("analytics", "Migrating")
        # Edits while the Job runs: metadata, then the spec (a new generation), from another client.
        setup.k8s.kubectl("label", "bschema", "analytics", "-n", setup.namespace, "team=data", check=True)
        setup.patch("analytics", {"spec": {"activeDeadlineSeconds": 1800}}).check_returncode()
        generation = setup.get("analytics")["metadata"]["generation"]
        assert generation == 2
        status = setup.wait_phase("analytics", "Ready", currentVersion=2, observedGeneration=2)
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        assert conditions["Ready"] == "True" and conditions["Reconciling"] == "False"
        assert setup.get("analytics")["metadata"]["labels"] == {"team": "data"}
        assert setup.job_names() == ["analytics-migrate-v2-1"]
    assert runner.exception is None, runner.output


def test_cli_migrate_of_the_same_database_meanwhile_is_seen(
    make: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Someone migrates by hand meanwhile: the Job finds nothing left to do and the status says where it stands."""
    setup: Setup = make()  # type: ignore[operator]
    config = tmp_path / "manual.yml"
    import yaml

    config.write_text(yaml.safe_dump({"storage": {"connection": setup.server.connection(setup.database)}}))
    done = run_process("migrate", "apply", "--config", str(config), "--target", "3", "--migrations", setup.package,
                       env={"PYTHONPATH": f"{setup.package_root}:{Path(__file__).resolve().parents[2]}"})  # fmt: skip
    assert done.code == 0, done.err
    with operator(setup.k8s, setup.namespace, monkeypatch) as runner:
        setup.apply(setup.schema("analytics", 3, **SKIP_BACKUP)).check_returncode()
        status = setup.wait_phase("analytics", "Ready", currentVersion=3)
        assert status["lastMigration"]["from"] == 3
        assert any("nothing to apply" in e["message"] for e in setup.events("analytics"))
    assert runner.exception is None, runner.output


def test_unreachable_database_is_retried_with_backoff_then_stalls(
    make: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import yaml

    from .operator_support import free_port

    setup: Setup = make()  # type: ignore[operator]
    connection = {**setup.server.connection(setup.database), "port": free_port()}  # nothing listens there
    config = tmp_path / "unreachable.yml"
    config.write_text(yaml.safe_dump({"storage": {"connection": connection}}))
    setup.k8s.kubectl("create", "secret", "generic", "unreachable", "-n", setup.namespace,
                      f"--from-file=config.yml={config}", check=True)  # fmt: skip
    manifest = setup.schema("analytics", 1, **SKIP_BACKUP)
    manifest["spec"]["configSecretRef"] = {"name": "unreachable"}
    with operator(setup.k8s, setup.namespace, monkeypatch, BASELINR_OPERATOR_RETRY_LIMIT="2") as runner:
        setup.apply(manifest).check_returncode()
        first = setup.wait_phase("analytics", "Failed")
        if first.get("retry", {}).get("failures") == 1:
            assert {c["type"]: c["reason"] for c in first["conditions"]}["Reconciling"] == "RetryScheduled"
            assert "retry 1 of 2 in 2s" in first["message"]
        stalled = wait_for(
            lambda: (s := setup.status("analytics")) and _stalled(s, "RetriesExhausted"), timeout=120, what="retries exhausted"
        )
        assert "Cannot connect" in stalled["message"] or "could not connect" in stalled["message"].lower()
        # Three attempts: the first and two retries, each a new Job of its own run.
        assert setup.job_names() == ["analytics-migrate-v1-1", "analytics-migrate-v1-2", "analytics-migrate-v1-3"]
        times = sorted(j["metadata"]["creationTimestamp"] for j in setup.jobs())
        assert times[0] < times[2]  # spaced out, not all at once
        texts = cluster_texts(setup, "analytics")
    assert runner.exception is None, runner.output
    no_password_anywhere(setup, {**texts, "operator log": runner.output})


def _stalled(status: dict[str, object], reason: str) -> dict[str, object] | None:
    conditions = {c["type"]: c for c in status.get("conditions", [])}  # type: ignore[union-attr,index]
    stalled = conditions.get("Stalled")
    return status if stalled and stalled["status"] == "True" and stalled["reason"] == reason else None
