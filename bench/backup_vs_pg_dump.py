"""Benchmark: ``baselinr backup create`` / ``restore`` against ``pg_dump -Fc`` / ``pg_restore``, side by side.

Not a test (timings never decide pass/fail). Starts its own PostgreSQL
(``tests.support.servers.start_postgres``), fills ``baselinr_results`` with
``--rows`` rows (default 1,000,000) plus runs and events, then in one run:

* ``pg_dump -Fc`` of the ``baselinr_*`` tables vs ``python -m baselinr backup create``;
* ``pg_restore`` into an empty database vs ``python -m baselinr backup restore`` into another.

Each tool runs as its own process, so peak memory is that process's max RSS
(``wait4``). Prints seconds, rows/s, bytes written, peak memory and the
ratios (baselinr / pg tool; throughput ratio >= 0.8 is the goal).

    python bench/backup_vs_pg_dump.py [--rows 1000000] [--repeat 3] [--pg-bin /usr/lib/postgresql/15/bin] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import Server, start_postgres  # noqa: E402


def measure(cmd: list[str], env: dict[str, str], scratch: Path) -> dict[str, Any]:
    """Run ``cmd`` under GNU time: wall seconds and the process's peak RSS in MiB.

    GNU time (a small C program) forks the tool, so the peak is the tool's
    own; a child forked straight from this Python process would carry this
    process's RSS in its maximum.
    """
    report = scratch / "time.txt"
    started = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), *cmd], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    peak_kib = int(report.read_text().split()[-1])
    return {"seconds": seconds, "peak_mib": peak_kib / 1024, "stdout": proc.stdout}


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def fill(server: Server, db: str, rows: int) -> None:
    import psycopg2

    from baselinr.config import settings_from_dict
    from baselinr.storage.migrations.manager import MigrationManager

    settings = settings_from_dict({"storage": {"connection": server.connection(db)}}, env={})
    mgr = MigrationManager.from_settings(settings)
    mgr.apply()
    mgr.close()
    conn = psycopg2.connect(host=server.host, port=server.port, user=server.user, password=server.password, dbname=db)
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO baselinr_runs SELECT 'run-' || g, 'dataset_' || mod(g, 50), 'public', "
            "timestamp '2024-01-01' + g * interval '1 minute', 'production', 'completed', g * 10, 12 "
            "FROM generate_series(1, %s) g",
            (max(rows // 100, 1),),
        )
        cur.execute(
            "INSERT INTO baselinr_results (run_id, dataset_name, schema_name, column_name, column_type, metric_name, "
            "metric_value, profiled_at) SELECT 'run-' || (g / 100), 'dataset_' || mod(g, 50), 'public', 'column_' || mod(g, 40), "
            "'VARCHAR(255)', (ARRAY['mean','stddev','null_count','distinct_count','min','max'])[1 + mod(g, 6)], "
            "(g * 0.37)::text, timestamp '2024-01-01' + g * interval '1 second' FROM generate_series(1, %s) g",
            (rows,),
        )
        cur.execute(
            "INSERT INTO baselinr_events (event_id, event_type, run_id, table_name, column_name, metric_name, baseline_value, "
            "current_value, change_percent, drift_severity, timestamp, metadata) SELECT md5(g::text), 'drift', 'run-' || g, "
            "'dataset_1', 'column_1', 'mean', g * 1.5, g * 1.7, 13.3, 'low', now(), '{\"k\": ' || g || '}' "
            "FROM generate_series(1, %s) g",
            (max(rows // 100, 1),),
        )
    with conn.cursor() as cur:
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="baselinr_results rows (default 1,000,000)")
    parser.add_argument("--pg-bin", default="/usr/lib/postgresql/15/bin", help="where pg_dump and pg_restore are")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median time is reported (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="baselinr-bench-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        server = start_postgres(base / "server")
        try:
            run_bench(server, base, args)
        finally:
            server.stop()


def run_bench(server: Server, base: Path, args: argparse.Namespace) -> None:
    source = server.create_database("bench_src")
    print(f"Filling {source} with {args.rows:,} baselinr_results rows ...", flush=True)
    started = time.perf_counter()
    fill(server, source, args.rows)
    print(f"  filled in {time.perf_counter() - started:.1f}s", flush=True)

    env = {**os.environ, "PGPASSWORD": server.password, "PYTHONPATH": str(ROOT)}
    pg = ["-h", server.host, "-p", str(server.port), "-U", server.user]
    total_rows = args.rows + 2 * max(args.rows // 100, 1) + 1

    def config(db: str) -> Path:
        import yaml

        path = base / f"{db}.yml"
        path.write_text(yaml.safe_dump({"storage": {"connection": server.connection(db)}}))
        return path

    results: dict[str, dict[str, Any]] = {}

    def keep(name: str, sample: dict[str, Any], written: int) -> None:
        """Keep every round's figures; report the median time and the largest peak."""
        entry = results.setdefault(name, {"runs": []})
        entry["runs"].append(round(sample["seconds"], 3))
        entry["seconds"] = statistics.median(entry["runs"])
        entry["peak_mib"] = max(entry.get("peak_mib", 0.0), sample["peak_mib"])
        entry["bytes"] = written

    # Rounds interleave the tools, so a busy machine slows both sides alike.
    for round_no in range(args.repeat):
        print(f"Round {round_no + 1} of {args.repeat} ...", flush=True)
        dump_file = base / f"pg_dump-{round_no}.custom"
        dest = base / f"backups-{round_no}"
        sample = measure(
            [f"{args.pg_bin}/pg_dump", *pg, "-d", source, "-Fc", "-t", "baselinr_*", "-f", str(dump_file)], env, base
        )
        keep("pg_dump -Fc", sample, size_of(dump_file))

        sample = measure(
            [sys.executable, "-m", "baselinr", "backup", "create", "-c", str(config(source)), "--dest", str(dest), "-o", "json"],
            env,
            base,
        )
        backup_path = Path(json.loads(sample["stdout"])["path"])
        keep("baselinr backup create", sample, size_of(backup_path))

        target_pg = server.create_database("bench_pg_restore")
        sample = measure([f"{args.pg_bin}/pg_restore", *pg, "-d", target_pg, str(dump_file)], env, base)
        keep("pg_restore", sample, 0)

        target_b = server.create_database("bench_b_restore")
        sample = measure(
            [sys.executable, "-m", "baselinr", "backup", "restore", str(backup_path), "-c", str(config(target_b)), "-o", "json"],
            env,
            base,
        )
        keep("baselinr backup restore", sample, 0)

        sample = measure([sys.executable, "-m", "baselinr", "backup", "verify", str(backup_path), "-o", "json"], env, base)
        keep("baselinr backup verify (no peer)", sample, 0)
        for db in (target_pg, target_b):
            server.admin(f"DROP DATABASE {db}")
        dump_file.unlink()
        shutil.rmtree(dest)

    print()
    print(f"PostgreSQL {server.port}: {total_rows:,} rows in the baselinr_* tables ({args.rows:,} in baselinr_results)")
    print(f"median of {args.repeat} round(s); peak RSS is the largest seen")
    print(f"{'tool':34} {'seconds':>8} {'rows/s':>12} {'bytes written':>14} {'peak RSS MiB':>13}")
    for name, r in results.items():
        r["rows_per_s"] = total_rows / r["seconds"]
        written = f"{r['bytes']:,}" if r["bytes"] else "-"
        print(f"{name:34} {r['seconds']:8.2f} {r['rows_per_s']:12,.0f} {written:>14} {r['peak_mib']:13.1f}")
    ratios = {
        "backup throughput / pg_dump": results["baselinr backup create"]["rows_per_s"] / results["pg_dump -Fc"]["rows_per_s"],
        "backup bytes / pg_dump": results["baselinr backup create"]["bytes"] / results["pg_dump -Fc"]["bytes"],
        "backup peak RSS / pg_dump": results["baselinr backup create"]["peak_mib"] / results["pg_dump -Fc"]["peak_mib"],
        "restore throughput / pg_restore": results["baselinr backup restore"]["rows_per_s"] / results["pg_restore"]["rows_per_s"],
        "restore peak RSS / pg_restore": results["baselinr backup restore"]["peak_mib"] / results["pg_restore"]["peak_mib"],
    }
    print()
    for name, value in ratios.items():
        print(f"{name:34} {value:6.2f}x")
    goal = ratios["backup throughput / pg_dump"] >= 0.8 and ratios["restore throughput / pg_restore"] >= 0.8
    print(f"\nGoal (>= 0.8x pg_dump/pg_restore throughput): {'met' if goal else 'NOT met'}")
    if args.json:
        print(json.dumps({"rows": total_rows, "results": results, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
