"""Operating the operator on a real control plane: the API server's own validation (downgrades,
versions), the least-privilege RBAC it runs under, the manifests in deploy/, suspend, two resources
sharing one database, and the periodic drift check that never applies anything."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.packages import sql_migration
from tests.support.servers import Server

from .cluster import Cluster
from .operator_support import (
    ROOT,
    Setup,
    install_crd,
    make_setup,
    operator,
    service_account_kubeconfig,
)
from .waiting import forbidden

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]

SKIP_BACKUP = {"backup": {"mode": "Skip"}}


@pytest.fixture(scope="module")
def crd(k8s: Cluster) -> None:
    install_crd(k8s)


@pytest.fixture
def setup(k8s: Cluster, namespace: str, pg_server: Server, tmp_path: Path, crd: None) -> Iterator[Setup]:
    slow = {
        2: sql_migration(2, "SELECT pg_sleep(4); CREATE TABLE op_two (id INTEGER PRIMARY KEY)", "DROP TABLE op_two"),
        3: sql_migration(3, "CREATE TABLE op_three (id INTEGER PRIMARY KEY)", "DROP TABLE op_three"),
    }
    made = make_setup(k8s, namespace, pg_server, tmp_path, slow)
    yield made
    made.close()
    gc.collect()


def test_api_server_refuses_downgrades_and_bad_versions(setup: Setup) -> None:
    k8s, ns = setup.k8s, setup.namespace
    bad = setup.apply(setup.schema("zero", 0, **SKIP_BACKUP))
    assert bad.returncode != 0 and "spec.targetVersion" in bad.stderr and "greater than or equal to 1" in bad.stderr
    no_volume = setup.apply(setup.schema("novol", 1, backup={"mode": "Required"}))
    assert no_volume.returncode != 0 and "spec.backup.objectStore is required unless spec.backup.mode is Skip" in no_volume.stderr
    setup.apply(setup.schema("analytics", 3, **SKIP_BACKUP)).check_returncode()
    fresh = setup.get("analytics")
    assert fresh["status"]["observedGeneration"] == -1 and fresh["status"]["phase"] == "Pending"  # CRD defaults
    # No version recorded yet: a lower target is no downgrade of anything (an upgrade that failed is taken back).
    lower = setup.patch("analytics", {"spec": {"targetVersion": 2}})
    assert lower.returncode == 0, lower.stderr
    # As if the operator had migrated to 3: below the current version is refused, with allowDowngrade accepted.
    k8s.kubectl("patch", "bschema", "analytics", "-n", ns, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"currentVersion": 3}}), check=True)  # fmt: skip
    refused = setup.patch("analytics", {"spec": {"targetVersion": 1}})
    assert refused.returncode != 0 and "below status.currentVersion" in refused.stderr
    assert setup.get("analytics")["spec"]["targetVersion"] == 2
    assert setup.patch("analytics", {"spec": {"targetVersion": 3}}).returncode == 0  # at the database's version
    allowed = setup.patch("analytics", {"spec": {"targetVersion": 1, "allowDowngrade": True}})
    assert allowed.returncode == 0, allowed.stderr
    # Status writes stay possible whatever the spec says.
    ok = k8s.kubectl("patch", "bschema", "analytics", "-n", ns, "--subresource=status", "--type=merge",
                     "-p", json.dumps({"status": {"currentVersion": 3, "phase": "Migrating"}}))  # fmt: skip
    assert ok.returncode == 0, ok.stderr


def test_operator_runs_with_least_privilege_rbac(setup: Setup, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    k8s, ns = setup.k8s, setup.namespace
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "rbac-namespaced.yaml").read_text()))
    for doc in docs:
        doc["metadata"]["namespace"] = ns
        for subject in doc.get("subjects", []):
            subject["namespace"] = ns
    k8s.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), check=True)
    account = f"system:serviceaccount:{ns}:baselinr-operator"
    for verb, resource, expected in [
        ("get", "secrets", "no"), ("list", "secrets", "no"), ("create", "jobs", "yes"), ("delete", "jobs", "yes"),
        ("patch", "baselinrschemas.baselinr.io", "no"), ("patch", "baselinrschemas.baselinr.io --subresource=status", "yes"),
        ("create", "events", "yes"), ("list", "pods", "yes"), ("create", "pods", "no"),
    ]:  # fmt: skip
        answer = k8s.kubectl("auth", "can-i", verb, *resource.split(), "-n", ns, f"--as={account}").stdout.strip()
        assert answer == expected, f"{verb} {resource}: {answer}"
    kubeconfig = service_account_kubeconfig(k8s, ns, "baselinr-operator", tmp_path / "operator.kubeconfig")
    with operator(k8s, ns, monkeypatch, kubeconfig=kubeconfig) as runner:
        setup.apply(setup.schema("analytics", 1, **SKIP_BACKUP)).check_returncode()
        setup.wait_phase("analytics", "Ready", currentVersion=1)
        assert any(e["reason"] == "MigrationSucceeded" for e in setup.events("analytics"))
    assert runner.exception is None, runner.output
    assert not forbidden(runner.output), runner.output[-3000:]


def test_deploy_manifests_are_accepted_by_the_api_server(k8s: Cluster, crd: None) -> None:
    for namespace in ("baselinr-system", "data"):
        k8s.kubectl("create", "namespace", namespace)  # may exist already
    for name in ("rbac.yaml", "rbac-namespaced.yaml", "operator.yaml", "examples/baselinrschema.yaml"):
        applied = k8s.kubectl("apply", "--dry-run=server", "-f", str(ROOT / "deploy" / name))
        assert applied.returncode == 0, f"{name}: {applied.stderr}"


def test_suspend_then_resume(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    with operator(setup.k8s, setup.namespace, monkeypatch) as runner:
        setup.apply(setup.schema("analytics", 1, suspend=True, **SKIP_BACKUP)).check_returncode()
        status = setup.wait_phase("analytics", "Suspended")
        assert {c["type"]: c["reason"] for c in status["conditions"]}["Ready"] == "Suspended"
        assert setup.jobs() == []
        setup.patch("analytics", {"spec": {"suspend": False}}).check_returncode()
        setup.wait_phase("analytics", "Ready", currentVersion=1)
    assert runner.exception is None, runner.output


def test_two_resources_on_one_database_never_migrate_at_once(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    with operator(setup.k8s, setup.namespace, monkeypatch) as runner:
        setup.apply(setup.schema("first", 2, **SKIP_BACKUP)).check_returncode()
        setup.wait_phase("first", "Migrating")
        setup.apply(setup.schema("second", 2, **SKIP_BACKUP)).check_returncode()
        waiting = setup.wait_phase("second", "Pending")
        assert "first is migrating the same database" in waiting["message"]
        assert any(e["type"] == "Warning" and e["reason"] == "WaitingForDatabase" for e in setup.events("second"))
        setup.wait_phase("first", "Ready", currentVersion=2)
        second = setup.wait_phase("second", "Ready", currentVersion=2)
        assert second["lastMigration"]["from"] == 2  # the first one had done the work
        jobs = {j["metadata"]["name"]: j for j in setup.jobs()}
        assert sorted(jobs) == ["first-migrate-v2-1", "second-migrate-v2-1"]
        first_done = jobs["first-migrate-v2-1"]["status"]["completionTime"]
        assert jobs["second-migrate-v2-1"]["metadata"]["creationTimestamp"] >= first_done
    assert runner.exception is None, runner.output


