"""Benchmark: the DDL lock guard under live writes, with and without it, on PostgreSQL and MariaDB.

Not a test (timings never decide pass/fail). Starts its own servers
(``tests.support.servers``) and, for each database and each mode, in a fresh
database at v1:

* a writer inserts into ``baselinr_results`` every 10 ms (the profiler);
* a reader opens a transaction that reads the table and keeps it ``--hold``
  seconds (a dashboard query);
* ``python -m baselinr migrate apply`` runs a migration that alters the table,
  once with the guard (``--ddl-lock-timeout`` 2 s, enough tries to outlast the
  reader) and once without it (``--ddl-lock-timeout 0``, the behaviour before
  the guard).

Prints, side by side, the writer's longest wait for one insert, how long after
the reader ended the migration completed, and whether v2 was applied once.
The goal: with the guard the longest wait is at most the lock timeout + 20 %,
and the migration completes within one backoff interval after the reader ends.

    python bench/ddl_lock_guard.py [--hold 20] [--lock-timeout 2] [--only postgres|mysql] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from baselinr.config import load_config  # noqa: E402
from baselinr.storage.migrations.manager import MigrationManager  # noqa: E402
from tests.support.packages import sql_migration, write_package  # noqa: E402
from tests.support.servers import Server, start_mariadb, start_postgres  # noqa: E402

INSERT = (
    "INSERT INTO baselinr_results (run_id, dataset_name, column_name, metric_name, metric_value, profiled_at) "
    "VALUES ('bench', 'orders', 'id', 'count', '1', CURRENT_TIMESTAMP)"
)
ALTER = "ALTER TABLE baselinr_results ADD COLUMN bench_note VARCHAR(50);"


def one_run(server: Server, dialect: str, scratch: Path, guard: bool, hold: float, lock_timeout: float) -> dict[str, Any]:
    from sqlalchemy import text

    config = scratch / f"{dialect}-{'guard' if guard else 'none'}.yml"
    config.write_text(yaml.safe_dump({"storage": {"connection": server.connection(server.create_database("bench"))}}))
    pkg_root = scratch / f"pkg-{dialect}-{guard}"
    pkg = write_package(pkg_root, {2: sql_migration(2, ALTER)})
    mgr = MigrationManager.from_settings(load_config(str(config)), migrations_package=pkg)
    mgr.apply(1)
    stop = threading.Event()
    waits: list[float] = []

    def writer() -> None:
        with mgr.engine.connect() as conn:
            while not stop.is_set():
                started = time.perf_counter()
                conn.execute(text(INSERT))
                conn.commit()
                waits.append(time.perf_counter() - started)
                time.sleep(0.01)

    reader_end: dict[str, float] = {}

    def reader() -> None:
        with mgr.engine.connect() as conn:
            conn.execute(text("SELECT COUNT(*) FROM baselinr_results")).scalar()
            time.sleep(hold)
            conn.rollback()
            reader_end["t"] = time.perf_counter()

    threads = [threading.Thread(target=writer, daemon=True), threading.Thread(target=reader, daemon=True)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    tries = str(max(5, int(hold / lock_timeout) + 5))
    args = ["--ddl-lock-timeout", str(lock_timeout), "--ddl-lock-tries", tries] if guard else ["--ddl-lock-timeout", "0"]
    env = {**os.environ, "PYTHONPATH": f"{pkg_root}{os.pathsep}{ROOT}"}
    proc = subprocess.run(
        [sys.executable, "-m", "baselinr", "migrate", "apply", "-c", str(config), "--migrations", pkg, *args],
        capture_output=True,
        text=True,
        env=env,
    )
    done = time.perf_counter()
    threads[1].join()
    stop.set()
    threads[0].join()
    with mgr.engine.connect() as conn:
        applied = conn.execute(text("SELECT COUNT(*) FROM baselinr_schema_version WHERE version = 2")).scalar()
    mgr.close()
    return {
        "dialect": dialect,
        "guard": guard,
        "exit_code": proc.returncode,
        "retries": proc.stdout.count("waiting for a lock held by"),
        "writer_longest_wait_s": round(max(waits), 3),
        "writer_inserts": len(waits),
        "completed_after_reader_s": round(done - reader_end["t"], 3),
        "v2_applied_rows": applied,
        "error": proc.stderr.strip()[-300:] if proc.returncode else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", type=float, default=20.0, help="seconds the reader keeps its transaction open")
    parser.add_argument("--lock-timeout", type=float, default=2.0, help="--ddl-lock-timeout of the guarded run")
    parser.add_argument("--only", choices=["postgres", "mysql"], default=None)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="baselinr-bench-") as d:
        base = Path(d)
        base.chmod(0o755)
        starters = {"postgres": start_postgres, "mysql": start_mariadb}
        for dialect, start in starters.items():
            if opts.only and dialect != opts.only:
                continue
            server = start(base)
            try:
                for guard in (True, False):
                    results.append(one_run(server, dialect, base, guard, opts.hold, opts.lock_timeout))
            finally:
                server.stop()
    if opts.json:
        print(json.dumps(results, indent=2))
        return
    print(f"reader holds its lock {opts.hold:g} s; writer inserts every 10 ms; guard lock timeout {opts.lock_timeout:g} s")
    head = ("database", "mode", "exit", "retries", "longest insert wait", "done after reader", "v2 rows")
    print(f"{head[0]:<10} {head[1]:<9} {head[2]:>4} {head[3]:>7} {head[4]:>20} {head[5]:>18} {head[6]:>7}")
    for r in results:
        print(
            f"{r['dialect']:<10} {'guard' if r['guard'] else 'no guard':<9} {r['exit_code']:>4} {r['retries']:>7} "
            f"{r['writer_longest_wait_s']:>19.3f}s {r['completed_after_reader_s']:>17.3f}s {r['v2_applied_rows']:>7}"
        )
        if r["error"]:
            print(f"    {r['error']}")


if __name__ == "__main__":
    main()
