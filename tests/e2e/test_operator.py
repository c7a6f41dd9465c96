"""The BaselinrSchema operator on a real control plane: the happy path, upgrades, Events, metrics,
the CRD's own validation, and that no password shows anywhere.

The operator runs under ``KopfRunner`` in this process; the node agent runs
its Jobs' ``baselinr job ...`` commands for real against PostgreSQL.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import Server

from .cluster import Cluster
from .operator_support import (
    Setup,
    cluster_texts,
    free_port,
    install_crd,
    make_setup,
    metrics_text,
    no_password_anywhere,
    operator,
)

pytestmark = [
    pytest.mark.e2e,
    # kopf's event loop can end with aiohttp transports still open; they are reported as unraisable.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module")
def crd(k8s: Cluster) -> Iterator[None]:
    install_crd(k8s)
    yield


@pytest.fixture
def setup(k8s: Cluster, namespace: str, pg_server: Server, tmp_path: Path, crd: None) -> Iterator[Setup]:
    made = make_setup(k8s, namespace, pg_server, tmp_path)
    yield made
    made.close()
    gc.collect()


def metric_value(text: str, sample: str) -> float:
    """The value of one sample line (name with labels) of a Prometheus text exposition; 0 when absent."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def test_create_backup_migrate_ready_then_upgrade(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import REGISTRY, generate_latest

    # The operator runs in this process: its counters are process-wide and may carry other tests'
    # migrations. Assert what this test adds to them.
    before = generate_latest(REGISTRY).decode()
    port, health = free_port(), free_port()
    metrics_env = {"BASELINR_OPERATOR_METRICS_PORT": str(port)}
    with operator(setup.k8s, setup.namespace, monkeypatch, liveness_port=health, **metrics_env) as runner:
        setup.apply(setup.schema("analytics", 2)).check_returncode()
        waited = setup.k8s.kubectl(
            "wait", "--for=condition=Ready", "bschema/analytics", "-n", setup.namespace, "--timeout=150s", timeout=170
        )
        assert waited.returncode == 0, waited.stderr
        status = setup.status("analytics")
        assert (status["phase"], status["currentVersion"], status["targetVersion"], status["valid"]) == ("Ready", 2, 2, True)
        assert status["observedGeneration"] == setup.get("analytics")["metadata"]["generation"]
        assert status["codeVersion"] == 3
        assert status["lastBackup"]["skipped"] is True  # a fresh database has nothing to back up
        assert status["lastMigration"].get("from") is None and status["lastMigration"]["to"] == 2
        assert status["lastMigration"]["job"] == "analytics-migrate-v2-1"
        conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
        assert conditions == {
            "Ready": ("True", "AtTargetVersion"),
            "Reconciling": ("False", "AtTargetVersion"),
            "Stalled": ("False", "AtTargetVersion"),
            "BackedUp": ("True", "BackupSkipped"),
            "Migrated": ("True", "MigrationSucceeded"),
            "Validated": ("True", "ValidationSucceeded"),
        }
        table = setup.k8s.kubectl("get", "bschema", "analytics", "-n", setup.namespace, check=True).stdout.splitlines()
        assert table[0].split() == ["NAME", "TARGET", "CURRENT", "PHASE", "VALID", "READY", "AGE"]
        assert table[1].split()[:6] == ["analytics", "2", "2", "Ready", "true", "True"]
        assert setup.job_names() == ["analytics-backup-v2-1", "analytics-migrate-v2-1"]
        assert setup.history() == [(1, "applied"), (2, "applied")]

        # Bump the target: a real backup of v2 first, then only v3 is applied.
        setup.patch("analytics", {"spec": {"targetVersion": 3}}).check_returncode()
        status = setup.wait_phase("analytics", "Ready", currentVersion=3)
        assert status["lastMigration"]["from"] == 2 and status["lastMigration"]["to"] == 3
        assert status["lastBackup"]["skipped"] is False and status["lastBackup"]["version"] == 2
        backup_dir = Path(status["lastBackup"]["location"])
        assert backup_dir.parent == setup.backups and (backup_dir / "manifest.json").is_file()
        assert setup.history() == [(1, "applied"), (2, "applied"), (3, "applied")]
        assert setup.job_names() == [
            "analytics-backup-v2-1",
            "analytics-backup-v3-2",
            "analytics-migrate-v2-1",
            "analytics-migrate-v3-2",
        ]
        messages = [(e["type"], e["reason"], e["message"]) for e in setup.events("analytics")]
        reasons = {r for _, r, _ in messages}
        assert {"BackupRunning", "BackupSkipped", "BackupSucceeded", "MigrationRunning", "MigrationSucceeded"} <= reasons
        assert any(r == "MigrationSucceeded" and "applied v3" in m and "v2" not in m.split(":", 2)[-1] for _, r, m in messages)
        assert all(t == "Normal" for t, _, _ in messages)

        assert json.loads(metrics_text(health, "/healthz"))["claims"] == 0  # the liveness probe answers
        metrics = metrics_text(port)
        succeeded = 'baselinr_operator_migrations_total{result="succeeded"}'
        assert metric_value(metrics, succeeded) - metric_value(before, succeeded) == 2
        assert f'baselinr_schema_current_version{{name="analytics",namespace="{setup.namespace}"}} 3.0' in metrics
        assert f'baselinr_schema_target_version{{name="analytics",namespace="{setup.namespace}"}} 3.0' in metrics
        durations = "baselinr_operator_migration_duration_seconds_count"
        assert metric_value(metrics, durations) - metric_value(before, durations) == 2
        texts = cluster_texts(setup, "analytics")
    assert runner.exception is None, runner.output
    texts["operator log"] = runner.output
    no_password_anywhere(setup, texts)
    # Only references to the Secret: the Jobs mount it, nothing copies it.
    pod_spec = json.loads(texts["jobs"])["items"][0]["spec"]["template"]["spec"]
    assert pod_spec["volumes"][0]["secret"]["secretName"] == "baselinr-storage"
    assert "Reconciling" not in runner.output or "Traceback" not in runner.output
