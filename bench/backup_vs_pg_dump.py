"""Benchmark: ``baselinr backup create`` / ``restore`` / ``verify`` vs ``pg_dump -Fc -Z1`` / ``pg_restore --single-transaction``.

Not a test (timings never decide pass/fail). Starts its own PostgreSQL
server, made durable for the run: ``fsync``, ``synchronous_commit`` and
``full_page_writes`` are ON (the test servers run with them off), and the
script prints what the server reports for them. For each ``--rows`` scale it
fills a database with that many ``baselinr_results`` rows (plus 1% as many
runs and events), then runs ``--repeat`` interleaved rounds; in each round
every tool runs once as its own process, the order of ours and the peer's
flipping from one round to the next so a busy machine slows both alike:

* backup: ``pg_dump -Fc -Z1 -t 'baselinr_*'`` (zlib level 1) vs ``python -m
  baselinr backup create`` (gzip level 1, with ISA-L where it is installed:
  files a little smaller than the peer's; the bytes ratio is printed);
* restore into an empty database: ``pg_restore --single-transaction`` (one
  transaction, like ours) vs ``python -m baselinr backup restore``;
* ``baselinr backup verify`` (no peer: ``pg_restore`` cannot check a dump's data).

Both restores build indexes with the server's own ``maintenance_work_mem``.

Time is the median wall time of the rounds; peak RSS is the largest max RSS
of the tool's own process (GNU ``time``). For each scale it prints ours /
peer for time and the goal beside it (<= 1.0), and our peak RSS against its
goal (<= 64 MiB, flat from 1M to 3M rows).

    python bench/backup_vs_pg_dump.py [--rows 100000,1000000,3000000] [--repeat 5] [--pg-bin DIR] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import Server, _as_user, _pg_bin, _wait, start_postgres  # noqa: E402

TIME_GOAL = 1.0
RSS_GOAL_MIB = 64.0
DURABLE = ("fsync", "synchronous_commit", "full_page_writes")


def start_durable_postgres(base: Path) -> Server:
    """The test tier's server (initdb, password, port), restarted with fsync, synchronous commit and full-page writes on."""
    server = start_postgres(base)
    data, log = server.root / "data", server.root / "server.log"
    # A fast shutdown, sent to the postmaster itself (the process started is runuser, which does not pass SIGINT on).
    os.kill(_postmaster(server), signal.SIGINT)
    server.proc.wait(timeout=60)
    with open(log, "ab") as logf:
        proc = subprocess.Popen(
            [
                *_as_user("postgres"),
                _pg_bin("postgres"),
                "-D",
                str(data),
                "-p",
                str(server.port),
                "-k",
                str(server.root),
                "-c",
                "listen_addresses=127.0.0.1",
                *(arg for name in DURABLE for arg in ("-c", f"{name}=on")),
                "-c",
                "max_connections=200",
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready() -> bool:
        try:
            server.admin("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    _wait(ready, 60, "PostgreSQL", log, proc)
    return dataclasses.replace(server, proc=proc)


def _postmaster(server: Server) -> int:
    return int((server.root / "data" / "postmaster.pid").read_text().split()[0])


def stop(server: Server) -> None:
    """A fast shutdown of the postmaster itself, then the test tier's cleanup."""
    try:
        os.kill(_postmaster(server), signal.SIGINT)
        server.proc.wait(timeout=60)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        pass
    server.stop()


def server_settings(server: Server) -> dict[str, str]:
    import psycopg2

    conn = psycopg2.connect(host=server.host, port=server.port, user=server.user, password=server.password, dbname="postgres")
    try:
        with conn.cursor() as cur:
            found = {}
            for name in (*DURABLE, "wal_level", "maintenance_work_mem", "server_version"):
                cur.execute(f"SHOW {name}")
                found[name] = str(cur.fetchone()[0])
            return found
    finally:
        conn.close()


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


class Samples:
    """Every round's figures per tool: median seconds, largest peak RSS, bytes written."""

    def __init__(self) -> None:
        self.tools: dict[str, dict[str, Any]] = {}

    def keep(self, tool: str, sample: dict[str, Any], written: int = 0) -> None:
        entry = self.tools.setdefault(tool, {"runs": [], "peaks": []})
        entry["runs"].append(round(sample["seconds"], 3))
        entry["peaks"].append(round(sample["peak_mib"], 1))
        entry["seconds"] = statistics.median(entry["runs"])
        entry["peak_mib"] = max(entry["peaks"])
        entry["bytes"] = written

    def __getitem__(self, tool: str) -> dict[str, Any]:
        return self.tools[tool]


PG_DUMP = "pg_dump -Fc -Z1"
PG_RESTORE = "pg_restore --single-transaction"
CREATE = "baselinr backup create"
RESTORE = "baselinr backup restore"
VERIFY = "baselinr backup verify"
PAIRS = ((CREATE, PG_DUMP, "backup"), (RESTORE, PG_RESTORE, "restore"))


def run_scale(server: Server, base: Path, rows: int, args: argparse.Namespace) -> dict[str, Any]:
    source = server.create_database("bench_src")
    print(f"\n== {rows:,} rows: filling {source} ...", flush=True)
    started = time.perf_counter()
    fill(server, source, rows)
    print(f"  filled in {time.perf_counter() - started:.1f}s", flush=True)

    # Python's default bytecode cache, as on a user's machine (the first round writes it), as migrate_vs_peers does.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"PGPASSWORD": server.password, "PYTHONPATH": str(ROOT)})
    pg = ["-h", server.host, "-p", str(server.port), "-U", server.user]
    total_rows = rows + 2 * max(rows // 100, 1)

    def config(db: str) -> Path:
        import yaml

        path = base / f"{db}.yml"
        path.write_text(yaml.safe_dump({"storage": {"connection": server.connection(db)}}))
        return path

    samples = Samples()
    baselinr = [sys.executable, "-m", "baselinr", "backup"]

    def one_round(round_no: int) -> None:
        dump_file = base / f"pg_dump-{round_no}.custom"
        dest = base / f"backups-{round_no}"
        made: list[Path] = []

        def pg_dump() -> None:
            cmd = [f"{args.pg_bin}/pg_dump", *pg, "-d", source, "-Fc", "-Z1", "-t", "baselinr_*", "-f", str(dump_file)]
            samples.keep(PG_DUMP, measure(cmd, env, base), size_of(dump_file))

        def create() -> None:
            sample = measure([*baselinr, "create", "-c", str(config(source)), "--dest", str(dest), "-o", "json"], env, base)
            made.append(Path(json.loads(sample["stdout"])["path"]))
            samples.keep(CREATE, sample, size_of(made[0]))

        def pg_restore() -> None:
            target = server.create_database("bench_pg_restore")
            cmd = [f"{args.pg_bin}/pg_restore", *pg, "-d", target, "--single-transaction", str(dump_file)]
            samples.keep(PG_RESTORE, measure(cmd, env, base))
            server.admin(f"DROP DATABASE {target}")

        def restore() -> None:
            target = server.create_database("bench_b_restore")
            cmd = [*baselinr, "restore", str(made[0]), "-c", str(config(target)), "-o", "json"]
            samples.keep(RESTORE, measure(cmd, env, base))
            server.admin(f"DROP DATABASE {target}")

        def verify() -> None:
            samples.keep(VERIFY, measure([*baselinr, "verify", str(made[0]), "-o", "json"], env, base))

        # The order flips each round, so neither tool always runs on a warmer (or busier) machine.
        steps = [create, pg_dump, restore, pg_restore] if round_no % 2 == 0 else [pg_dump, create, pg_restore, restore]
        for step in steps:
            step()
        verify()
        dump_file.unlink()
        subprocess.run(["rm", "-rf", str(dest)], check=True)

    for round_no in range(args.repeat):
        print(f"  round {round_no + 1} of {args.repeat}", flush=True)
        one_round(round_no)
    server.admin(f"DROP DATABASE {source}")
    return {"rows": rows, "total_rows": total_rows, "tools": samples.tools}


def report(scales: list[dict[str, Any]], settings: dict[str, str], repeat: int) -> dict[str, Any]:
    print()
    shown = ", ".join(f"{k}={v}" for k, v in settings.items())
    print(f"PostgreSQL ({shown}); median of {repeat} interleaved rounds; peak RSS is the largest seen")
    print(f"{'rows':>10} {'tool':32} {'median s':>9} {'min-max s':>13} {'bytes':>12} {'peak MiB':>9}")
    for scale in scales:
        for tool, r in scale["tools"].items():
            spread = f"{min(r['runs']):.2f}-{max(r['runs']):.2f}"
            written = f"{r['bytes']:,}" if r["bytes"] else "-"
            print(f"{scale['rows']:>10,} {tool:32} {r['seconds']:9.2f} {spread:>13} {written:>12} {r['peak_mib']:9.1f}")
    print()
    print(f"{'rows':>10} {'measure':48} {'ours/peer':>9} {'goal':>8}  met")
    ratios: list[dict[str, Any]] = []

    def line(rows: int, measure: str, value: float, goal: float | None) -> None:
        met = None if goal is None else value <= goal
        ratios.append({"rows": rows, "measure": measure, "value": round(value, 3), "goal": goal, "met": met})
        shown = "-" if goal is None else f"<= {goal}"
        print(f"{rows:>10,} {measure:48} {value:9.2f} {shown:>8}  {'-' if met is None else 'yes' if met else 'NO'}")

    for scale in scales:
        t = scale["tools"]
        for ours, peer, what in PAIRS:
            line(scale["rows"], f"{what} time vs {peer}", t[ours]["seconds"] / t[peer]["seconds"], TIME_GOAL)
        line(scale["rows"], f"backup bytes vs {PG_DUMP}", t[CREATE]["bytes"] / t[PG_DUMP]["bytes"], None)
        for tool, what in ((CREATE, "backup"), (RESTORE, "restore"), (VERIFY, "verify")):
            line(scale["rows"], f"{what} peak RSS, MiB (not a ratio)", t[tool]["peak_mib"], RSS_GOAL_MIB)
    by_rows = {s["rows"]: s["tools"] for s in scales}
    if 1_000_000 in by_rows and 3_000_000 in by_rows:
        for tool, what in ((CREATE, "backup"), (RESTORE, "restore"), (VERIFY, "verify")):
            grew = by_rows[3_000_000][tool]["peak_mib"] - by_rows[1_000_000][tool]["peak_mib"]
            print(f"{'':>10} {what + ' peak RSS, 3M minus 1M rows':48} {grew:+9.1f} MiB")
    return {"settings": settings, "repeat": repeat, "scales": scales, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,1000000,3000000", help="baselinr_results rows per scale, comma-separated")
    parser.add_argument("--pg-bin", default="/usr/lib/postgresql/15/bin", help="where pg_dump and pg_restore are")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds per scale; medians are reported (default 5)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    scales_rows = [int(r.replace("_", "")) for r in args.rows.split(",") if r.strip()]

    with tempfile.TemporaryDirectory(prefix="baselinr-bench-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        server = start_durable_postgres(base / "server")
        try:
            settings = server_settings(server)
            off = [name for name in DURABLE if settings[name] != "on"]
            if off:
                raise SystemExit(f"the server is not durable: {', '.join(off)} off")
            scales = [run_scale(server, base, rows, args) for rows in scales_rows]
        finally:
            stop(server)
    figures = report(scales, settings, args.repeat)
    if args.json:
        print(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
