"""The operator's status names the session a migrate Job waits for, on a real control plane.

A real PostgreSQL reader (an open transaction that read the table, as a
dashboard does) holds a lock the migration's ``ALTER TABLE`` needs; the
engine's DDL lock guard times out and retries, printing one line per retry
to the Job's log; the operator reads that log through the API server
(``pods/log``, served by the node agent) and shows ``status.lockWait`` and a
"waiting for a lock held by ..." message naming the reader's backend pid.
When the reader ends, the migration goes through and the wait is cleared.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests.support.packages import sql_migration
from tests.support.servers import Server

from .cluster import Cluster
from .operator_support import Setup, install_crd, make_setup, operator
from .waiting import wait_for

pytestmark = [
    pytest.mark.e2e,
    # kopf's event loop can end with aiohttp transports still open; they are reported as unraisable.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

# v3's ALTER waits at most 3 s for its lock per try, tried again with backoff: the reader is let go long before.
ALTER_V3 = (
    "migration = Migration(version=3, description='Add op_two.note', up_sql='ALTER TABLE op_two ADD COLUMN note TEXT', "
    "down_sql='ALTER TABLE op_two DROP COLUMN note', lock_timeout=3)\n"
)


@pytest.fixture
def setup(k8s: Cluster, namespace: str, pg_server: Server, tmp_path: Path) -> Iterator[Setup]:
    install_crd(k8s)
    versions = {2: sql_migration(2, "CREATE TABLE op_two (id INTEGER PRIMARY KEY)", "DROP TABLE op_two"), 3: ALTER_V3}
    made = make_setup(k8s, namespace, pg_server, tmp_path, versions)
    yield made
    made.close()
    gc.collect()


def reader(setup: Setup) -> Any:
    """A session with an open transaction that has read op_two: it holds ACCESS SHARE until it ends."""
    server = setup.server
    conn = psycopg2.connect(
        host=server.host, port=server.port, user=server.user, password=setup.password, dbname=setup.database,
        application_name="dashboard",
    )  # fmt: skip
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM op_two")
    return conn


def waiting_status(setup: Setup) -> dict[str, Any] | None:
    status = setup.status("locked")
    return status if status.get("lockWait") else None


def test_status_names_the_lock_holder_while_the_migrate_job_waits(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    with operator(setup.k8s, setup.namespace, monkeypatch):
        setup.apply(setup.schema("locked", 2, backup={"mode": "Skip"}))
        setup.wait_phase("locked", "Ready", currentVersion=2)
        dashboard = reader(setup)
        pid = dashboard.get_backend_pid()
        try:
            setup.patch("locked", {"spec": {"targetVersion": 3}})
            waiting = wait_for(
                lambda: waiting_status(setup),
                timeout=60,
                what="status.lockWait while the migrate Job retries",
                interval=0.3,
            )
            job = setup.k8s.get_json("job", waiting["run"]["job"], "-n", setup.namespace)
            assert not any(c["status"] == "True" for c in (job.get("status") or {}).get("conditions") or []), job["status"]
        finally:
            dashboard.rollback()
            dashboard.close()
        wait = waiting["lockWait"]
        assert wait["job"] == waiting["run"]["job"] and waiting["run"]["step"] == "Migrate"
        assert wait["heldBy"].startswith(f"PostgreSQL backend {pid} (") and "application dashboard" in wait["heldBy"]
        assert waiting["phase"] == "Migrating"
        assert waiting["message"] == f"Migrating to v3 (Job {wait['job']}): waiting for a lock held by {wait['heldBy']}"
        reconciling = next(c for c in waiting["conditions"] if c["type"] == "Reconciling")
        assert (reconciling["status"], reconciling["reason"]) == ("True", "WaitingForLock")

        done = setup.wait_phase("locked", "Ready", currentVersion=3)
        assert "lockWait" not in done, json.dumps(done)
        assert done["message"] == "At version 3"
        assert [v for v, state in setup.history() if v == 3] == [3]  # applied once, after its retries
        events = [e for e in setup.events("locked") if e["reason"] == "WaitingForLock"]
        assert len(events) == 1 and f"PostgreSQL backend {pid} " in events[0]["message"]
