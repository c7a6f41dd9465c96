"""Two operator replicas from the chart (its default), one leading through a Lease, on a real node:
the leader's pod deleted mid-backup, the leader frozen with SIGSTOP mid-migration, the Deployment
rolled mid-migration. Each time the run goes on under the new leader with exactly one backup Job
and one migrate Job per target, the resource reaches Ready, and the time from the leader's loss to
the standby's taking the Lease is measured and printed. No replica's log holds a traceback.

A run is held in flight on PostgreSQL: a migration by the engine's own lock, which its pod waits for
(up to 300 s); a backup, which takes no such lock, by a table lock that its reads wait for. The test
lets go of either when the new leader has the run. The operator replicas' logs are kept as the test
goes (a replaced pod's log is gone with it) and shown when it fails.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from baselinr.storage.dialects import LOCK_NAME
from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION as LATEST
from tests.e2e.cluster import Cluster
from tests.e2e.waiting import wait_for
from tests.support.servers import Server

from .chart import Installed, assert_no_traceback, config_secret, connect, history, schema, wait_ready
from .node import RealNode

pytestmark = pytest.mark.node

SKIP = {"backup": {"mode": "Skip"}}


@contextmanager
def engine_lock(server: Server, database: str) -> Iterator[None]:
    """The engine's migration lock on ``database``, held by this test until the block ends."""
    holder = connect(server, database)
    holder.autocommit = True
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (zlib.crc32(f"{LOCK_NAME}:public".encode()),))
        yield
    finally:
        holder.close()


@contextmanager
def table_lock(server: Server, database: str, table: str = "baselinr_runs") -> Iterator[None]:
    """An open transaction holding ``table`` in ACCESS EXCLUSIVE mode: a backup's read of it waits."""
    holder = connect(server, database)
    try:
        with holder.cursor() as cur:
            cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        holder.rollback()
        holder.close()


class LogKeeper:
    """Every operator pod's log, read once a second into memory: a pod deleted or rolled away takes its log
    with it, and a failure in these tests is read in the replicas' logs."""

    def __init__(self, inst: Installed) -> None:
        self.inst = inst
        self.logs: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pod in self.inst.pods():
                name = pod["metadata"]["name"]
                done = self.inst.k8s.kubectl("logs", "-n", self.inst.operator_namespace, name)
                if done.returncode == 0 and len(done.stdout) >= len(self.logs.get(name, "")):
                    self.logs[name] = done.stdout
            self._stop.wait(1.0)

    def __enter__(self) -> LogKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def text(self) -> str:
        return "\n".join(f"--- {name}\n{log[-6000:]}" for name, log in self.logs.items())


def events_text(k8s: Cluster, namespace: str) -> str:
    return k8s.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp").stdout[-4000:]


def patch_target(k8s: Cluster, namespace: str, target: int, **spec: Any) -> None:
    body = json.dumps({"spec": {"targetVersion": target, **spec}})
    k8s.kubectl("patch", "bschema", "analytics", "-n", namespace, "--type=merge", "-p", body, check=True)


def job_pod_running(k8s: Cluster, namespace: str, job: str) -> bool:
    pods = k8s.get_json("pods", "-n", namespace, "-l", f"job-name={job}")["items"]
    return any(p["status"].get("phase") == "Running" for p in pods)


def jobs_of(k8s: Cluster, namespace: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in k8s.get_json("jobs", "-n", namespace)["items"])


def wait_new_leader(inst: Installed, old: str, since: float) -> tuple[str, float]:
    """Poll the Lease until a pod other than ``old`` holds it; the seconds from ``since``."""
    found = wait_for(
        lambda: (lead := inst.leader()) not in (None, old) and lead,
        timeout=120,
        what=f"a replica other than {old} to take the Lease",
        interval=0.1,
    )
    return str(found), time.monotonic() - since


def both_replicas_running(inst: Installed) -> None:
    wait_for(
        lambda: len([p for p in inst.pods() if p["status"].get("phase") == "Running"]) == 2 and inst.leader() is not None,
        timeout=120,
        what="two operator replicas running, one holding the Lease",
    )


def ready_at_previous(inst: Installed, namespace: str, server: Server, tmp_path: Path, **spec: Any) -> str:
    """A database at v(N-1), Ready, under the current leader; returns its name."""
    database = config_secret(inst.k8s, namespace, server, tmp_path)
    inst.k8s.apply(json.dumps(schema("analytics", LATEST - 1, **spec)), namespace).check_returncode()
    wait_ready(inst, "analytics", LATEST - 1)
    return database


@pytest.mark.parametrize("step", ["backup", "migrate"])
def test_leader_deleted_mid_run_the_standby_carries_the_run_on(
    step: str, own_operator: Installed, backup_volume: Path, pg_server: Server, tmp_path: Path
) -> None:
    """The leader's pod deleted while the backup pod (held by a table lock) or the migrate pod (held by the
    engine's lock) waits: the standby takes the Lease the leader hands over on SIGTERM, and the run goes on."""
    installed = own_operator
    k8s, ns = installed.k8s, installed.namespace
    both_replicas_running(installed)
    spec = {} if step == "backup" else SKIP
    database = ready_at_previous(installed, ns, pg_server, tmp_path, **spec)
    job = f"analytics-{step}-v{LATEST}-2"
    hold = table_lock if step == "backup" else engine_lock
    with LogKeeper(installed) as kept, hold(pg_server, database):
        patch_target(k8s, ns, LATEST)
        wait_for(lambda: job_pod_running(k8s, ns, job), timeout=120, what=f"{job} waiting for its lock")
        old = installed.leader()
        assert old is not None
        lost = time.monotonic()
        k8s.kubectl("delete", "pod", old, "-n", installed.operator_namespace, "--wait=false", check=True)
        new, seconds = wait_new_leader(installed, old, lost)
        assert job_pod_running(k8s, ns, job)  # the run is still in flight when the standby takes it
    status = wait_ready(installed, "analytics", LATEST)
    seen = f"\n--- events\n{events_text(k8s, ns)}\n{kept.text()}"
    expected = [f"analytics-migrate-v{LATEST - 1}-1", f"analytics-migrate-v{LATEST}-2"]
    if step == "backup":
        assert status["lastBackup"]["skipped"] is False and status["lastBackup"]["version"] == LATEST - 1
        assert len(list(backup_volume.glob("**/manifest.json"))) == 1
        expected += [f"analytics-backup-v{LATEST - 1}-1", job]
    assert jobs_of(k8s, ns) == sorted(expected), seen
    assert status["lastMigration"]["job"] == f"analytics-migrate-v{LATEST}-2", seen
    assert history(pg_server, database) == [(v, "applied") for v in range(1, LATEST + 1)]
    assert_no_traceback(kept.text())
    print(f"\nleader pod deleted mid-{step}: {new} took the Lease {seconds:.2f} s later (released on SIGTERM)")


def test_leader_frozen_mid_migration_loses_the_lead_and_acts_no_more_when_thawed(
    own_operator: Installed, real_node: RealNode, pg_server: Server, tmp_path: Path
) -> None:
    installed = own_operator
    k8s, ns = installed.k8s, installed.namespace
    both_replicas_running(installed)
    database = ready_at_previous(installed, ns, pg_server, tmp_path, **SKIP)
    migrate_job = f"analytics-migrate-v{LATEST}-2"
    old = installed.leader()
    assert old is not None
    (container,) = next(p for p in installed.pods() if p["metadata"]["name"] == old)["status"]["containerStatuses"]
    pid = real_node.container_pid(container["containerID"])
    with engine_lock(pg_server, database):
        patch_target(k8s, ns, LATEST)
        wait_for(lambda: job_pod_running(k8s, ns, migrate_job), timeout=120, what=f"{migrate_job} waiting for the lock")
        frozen = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            new, seconds = wait_new_leader(installed, old, frozen)
            # The new leader has the run (the Job it adopts is still waiting), then the frozen one wakes up.
            threading.Event().wait(3)
        finally:
            os.kill(pid, signal.SIGCONT)
        woke = installed.k8s.kubectl("logs", "-n", installed.operator_namespace, old, "--tail=40").stdout
        wait_for(
            lambda: "Lost the lead" in k8s.kubectl("logs", "-n", installed.operator_namespace, old, "--tail=60").stdout,
            timeout=30,
            what=f"{old} to say it lost the lead once thawed",
        )
    status = wait_ready(installed, "analytics", LATEST)
    assert status["lastMigration"]["job"] == migrate_job
    assert jobs_of(k8s, ns) == [f"analytics-migrate-v{LATEST - 1}-1", migrate_job]
    assert history(pg_server, database) == [(v, "applied") for v in range(1, LATEST + 1)]
    assert installed.leader() == new
    assert_no_traceback(installed.all_logs())
    assert "Took the lead" not in woke.split("Lost the lead")[-1]
    print(f"\nleader frozen (SIGSTOP) mid-migration: {new} took the Lease {seconds:.2f} s later "
          "(lease 15 s, renew deadline 10 s, retry period 2 s)")  # fmt: skip


def test_a_rolling_update_mid_migration_keeps_one_leader_and_one_job(
    own_operator: Installed, pg_server: Server, tmp_path: Path
) -> None:
    installed = own_operator
    k8s, ns = installed.k8s, installed.namespace
    both_replicas_running(installed)
    database = ready_at_previous(installed, ns, pg_server, tmp_path, **SKIP)
    migrate_job = f"analytics-migrate-v{LATEST}-2"
    holders: list[tuple[float, str | None]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            lead = installed.leader()
            if not holders or holders[-1][1] != lead:
                holders.append((time.monotonic(), lead))
            stop.wait(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    with LogKeeper(installed) as kept, engine_lock(pg_server, database):
        patch_target(k8s, ns, LATEST)
        wait_for(lambda: job_pod_running(k8s, ns, migrate_job), timeout=120, what=f"{migrate_job} waiting for the lock")
        before = {p["metadata"]["name"] for p in installed.pods()}
        watcher.start()
        rolled = time.monotonic()
        k8s.kubectl("rollout", "restart", f"deployment/{installed.release}", "-n", installed.operator_namespace, check=True)
        done = k8s.kubectl("rollout", "status", f"deployment/{installed.release}", "-n", installed.operator_namespace,
                           "--timeout=240s", timeout=260)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        wait_for(lambda: installed.leader() not in before | {None}, timeout=60, what="a new replica leading")
    status = wait_ready(installed, "analytics", LATEST)
    stop.set()
    watcher.join(timeout=5)
    seen = f"\nLease holders: {holders}\n--- events\n{events_text(k8s, ns)}\n{kept.text()}"
    assert status["lastMigration"]["job"] == migrate_job, json.dumps(status, indent=1) + seen
    assert jobs_of(k8s, ns) == [f"analytics-migrate-v{LATEST - 1}-1", migrate_job], seen
    assert history(pg_server, database) == [(v, "applied") for v in range(1, LATEST + 1)]
    assert_no_traceback(kept.text())
    leaders = [h for _, h in holders if h is not None]
    assert len(leaders) == len(set(leaders)), holders  # each replica led at most once: no flapping
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(holders)]
    print(f"\nrolling update mid-migration: {len(leaders)} leaders in turn over {time.monotonic() - rolled:.1f} s; "
          f"Lease changes {[round(g, 2) for g in gaps]} s apart")  # fmt: skip
