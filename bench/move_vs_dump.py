"""Benchmark: ``baselinr migrate move`` SQLite → PostgreSQL vs ``sqlite3 .dump`` piped through a converter into ``psql``.

Not a test (timings never decide pass/fail). Starts its own durable
PostgreSQL server (``backup_vs_pg_dump.start_durable_postgres``: ``fsync``,
``synchronous_commit``, ``full_page_writes`` on). Fills a SQLite database
made by ``baselinr migrate apply`` with ``--rows`` ``baselinr_results`` rows
(plus 1% as many runs and events), then runs ``--repeat`` interleaved
rounds, the order flipped every round, each side into a fresh database:

* ours: ``python -m baselinr migrate move --config sqlite.yml --to pg.yml``
  (backup, a check of every value, restore in one transaction, and the
  verification: both sides' rows digested and ``migrate validate``);
* peer: ``python -m baselinr migrate apply`` on the target (the schema, as
  a user of the peer would need it too), then ``sqlite3 SRC .dump``, this
  script's ``--convert`` filter (only the data's INSERTs, the version table
  left out, a ``setval`` so ids continue) and ``psql -1 -q`` (one
  transaction). It checks nothing.

Time is the median wall time; peak RSS is the largest max RSS of any
process of the side (GNU ``time``'s ``%M`` over the shell that runs the
pipeline is the largest of its children). Prints ours / peer.

    python bench/move_vs_dump.py [--rows 1000000] [--repeat 5] [--json]

Needs the ``sqlite3`` and ``psql`` programs (Debian's ``sqlite3`` and
``postgresql-client``) and the test tier's PostgreSQL server binaries.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from backup_vs_pg_dump import measure, server_settings, start_durable_postgres, stop  # noqa: E402

from tests.support.servers import Server  # noqa: E402

SKIP_PREFIXES = (
    "PRAGMA",
    "BEGIN TRANSACTION",
    "COMMIT",
    "DELETE FROM sqlite_sequence",
    "INSERT INTO sqlite_sequence",
    "INSERT INTO baselinr_schema_version",
    'INSERT INTO "baselinr_schema_version"',
)


def convert(stream: Any = sys.stdin, out: Any = sys.stdout) -> None:
    """The converter of the peer: a SQLite dump's INSERTs as PostgreSQL takes them, nothing else."""
    in_ddl = False
    for line in stream:
        if in_ddl:
            in_ddl = not line.rstrip().endswith(";")
            continue
        if line.startswith(("CREATE TABLE", "CREATE INDEX", "CREATE UNIQUE INDEX")):
            in_ddl = not line.rstrip().endswith(";")
            continue
        if line.startswith(SKIP_PREFIXES):
            continue
        out.write(line.replace("char(10)", "chr(10)").replace("char(13)", "chr(13)"))
    out.write("SELECT setval(pg_get_serial_sequence('baselinr_results', 'id'), (SELECT MAX(id) FROM baselinr_results));\n")


def config(path: Path, connection: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"storage": {"connection": connection}}))
    return path


def fill(db: Path, rows: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cfg = config(db.with_suffix(".yml"), {"type": "sqlite", "database": "src", "filepath": str(db)})
    cmd = [sys.executable, "-m", "baselinr", "migrate", "apply", "--config", str(cfg)]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    conn = sqlite3.connect(db)
    try:
        runs = max(1, rows // 100)
        conn.executemany(
            "INSERT INTO baselinr_runs (run_id, dataset_name, schema_name, profiled_at, environment, status, row_count, "
            "column_count) VALUES (?, ?, 'public', ?, 'prod', 'completed', ?, 12)",
            ((f"run-{i:08d}", f"table_{i % 50}", f"2024-01-{1 + i % 28:02d} 12:00:00.{i:06d}", i * 10) for i in range(runs)),
        )
        conn.executemany(
            "INSERT INTO baselinr_results (run_id, dataset_name, schema_name, column_name, column_type, metric_name, "
            "metric_value, profiled_at) VALUES (?, ?, 'public', ?, 'VARCHAR', ?, ?, ?)",
            (
                (f"run-{i % runs:08d}", f"table_{i % 50}", f"col_{i % 13}", ("mean", "null_count", "distinct")[i % 3],
                 repr(i * 0.37), f"2024-01-{1 + i % 28:02d} 12:00:00.{i % 1000000:06d}")
                for i in range(rows)
            ),
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO baselinr_events (event_id, event_type, run_id, baseline_value, current_value, change_percent, "
            "timestamp, metadata) VALUES (?, 'drift', ?, ?, ?, ?, '2024-02-01 00:00:00', ?)",
            ((f"ev-{i}", f"run-{i % runs:08d}", i / 3, i / 7, 1.5, json.dumps({"i": i, "k": "v"})) for i in range(runs)),
        )
        conn.commit()
    finally:
        conn.close()


def round_(server: Server, src: Path, side: str, scratch: Path, n: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PGPASSWORD": server.password}
    name = server.create_database(f"{side}{n}")
    target = config(scratch / f"{side}{n}.yml", server.connection(name))
    if side == "ours":
        cmd = [sys.executable, "-m", "baselinr", "migrate", "move", "--config", str(src.with_suffix(".yml")),
               "--to", str(target), "--work-dir", str(scratch)]  # fmt: skip
    else:
        apply = f"{sys.executable} -m baselinr migrate apply --config {target} >/dev/null"
        psql = f"psql -h {server.host} -p {server.port} -U {server.user} -d {name} -q -1 -v ON_ERROR_STOP=1 >/dev/null"
        pipeline = f"sqlite3 {src} .dump | {sys.executable} {Path(__file__).resolve()} --convert | {psql}"
        cmd = ["sh", "-c", f"set -e; {apply}; {pipeline}"]
    result = measure(cmd, env, scratch)
    result["rows_loaded"] = count(server, name)
    server.admin(f"DROP DATABASE {name}")
    return result


def count(server: Server, database: str) -> int:
    """Result rows the side left in its target: both must have all of them."""
    import psycopg2

    conn = psycopg2.connect(host=server.host, port=server.port, user=server.user, password=server.password, dbname=database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM baselinr_results")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--convert", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.convert:
        convert()
        return
    import shutil

    missing = [tool for tool in ("sqlite3", "psql") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not found: install Debian's sqlite3 and postgresql-client packages")
    with tempfile.TemporaryDirectory(prefix="baselinr-bench-move-") as d:
        base = Path(d)
        base.chmod(0o755)
        server = start_durable_postgres(base)
        try:
            settings = server_settings(server)
            src = base / "src.db"
            fill(src, args.rows)
            sqlite_bytes = src.stat().st_size
            samples: dict[str, list[dict[str, Any]]] = {"ours": [], "peer": []}
            for n in range(args.repeat):
                for side in ("ours", "peer") if n % 2 == 0 else ("peer", "ours"):
                    samples[side].append(round_(server, src, side, base, n))
                    if samples[side][-1]["rows_loaded"] != args.rows:
                        raise SystemExit(f"{side} loaded {samples[side][-1]['rows_loaded']} of {args.rows} result rows")
                    print(f"round {n + 1} {side}: {samples[side][-1]['seconds']:.1f}s, {samples[side][-1]['peak_mib']:.0f} MiB",
                          file=sys.stderr, flush=True)  # fmt: skip
        finally:
            stop(server)
    summary = {
        side: {
            "median_seconds": statistics.median(s["seconds"] for s in runs),
            "min_seconds": min(s["seconds"] for s in runs),
            "max_seconds": max(s["seconds"] for s in runs),
            "peak_mib": max(s["peak_mib"] for s in runs),
        }
        for side, runs in samples.items()
    }
    report = {
        "rows": args.rows,
        "samples": args.repeat,
        "server": settings,
        "sqlite_bytes": sqlite_bytes,
        **summary,
        "time_ratio": summary["ours"]["median_seconds"] / summary["peer"]["median_seconds"],
        "rss_ratio": summary["ours"]["peak_mib"] / summary["peer"]["peak_mib"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"SQLite -> PostgreSQL, {args.rows:,} result rows, {args.repeat} interleaved samples; server: {settings}")
    for side in ("ours", "peer"):
        s = summary[side]
        print(f"  {side}: median {s['median_seconds']:.1f}s (min {s['min_seconds']:.1f}, max {s['max_seconds']:.1f}), "
              f"peak RSS {s['peak_mib']:.0f} MiB")  # fmt: skip
    print(f"  ours / peer: time {report['time_ratio']:.2f}, peak RSS {report['rss_ratio']:.2f}")


if __name__ == "__main__":
    main()
