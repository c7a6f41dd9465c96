"""Benchmark: ``baselinr backup create`` / ``verify`` / ``restore`` to S3 vs the local directory format.

Not a test (timings never decide pass/fail). Starts the test tier's
PostgreSQL server and S3 server (s3s-fs on loopback, built by
``tests/s3/build-s3s-fs.sh``), fills ``baselinr_results`` with
``--rows`` rows (plus 1% as many runs and events, as
``backup_vs_pg_dump.py`` does), then runs ``--repeat`` interleaved rounds;
in each round every command runs once as its own process against a local
directory and against ``s3://bucket/prefix``, the order flipping from one
round to the next so a busy machine slows both alike:

* ``backup create --dest DIR`` vs ``backup create --dest s3://…``;
* ``backup verify`` of each;
* ``backup restore`` of each into an empty database.

Time is the median wall time of the rounds; peak RSS the largest max RSS of
the tool's own process (GNU ``time``). It prints S3 / directory for each and
both peaks. The S3 server shares the machine's CPUs with the tool, so the
S3 figures include the server's work, which a remote S3 would not.

    python bench/backup_s3.py [--rows 1000000] [--repeat 5] [--part-size-mb 16] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from backup_vs_pg_dump import Samples, fill, measure  # noqa: E402

from tests.support.s3server import start_s3  # noqa: E402
from tests.support.servers import start_postgres  # noqa: E402

COMMANDS = ("create", "verify", "restore")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="baselinr_results rows (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds; medians are reported (default 5)")
    parser.add_argument("--part-size-mb", type=int, default=16, help="multipart part size for the S3 runs (default 16)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="baselinr-bench-s3-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        pg = start_postgres(base / "pg")
        s3 = start_s3(base)
        try:
            figures = run(pg, s3, base, args)
        finally:
            s3.stop()
            pg.stop()
    if args.json:
        print(json.dumps(figures, indent=2, default=str))


def run(pg: Any, s3: Any, base: Path, args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    source = pg.create_database("bench_src")
    print(f"== {args.rows:,} rows: filling {source} ...", flush=True)
    started = time.perf_counter()
    fill(pg, source, args.rows)
    print(f"  filled in {time.perf_counter() - started:.1f}s", flush=True)
    bucket = s3.new_bucket()

    def config(db: str) -> Path:
        path = base / f"{db}.yml"
        path.write_text(yaml.safe_dump({"storage": {"connection": pg.connection(db)}}))
        return path

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("AWS_")}
    env.update({"PYTHONPATH": str(ROOT), **s3.env(), "BASELINR_S3_PART_SIZE_MB": str(args.part_size_mb)})
    cli = [sys.executable, "-m", "baselinr", "backup"]
    src = config(source)
    samples = Samples()

    def one(kind: str, round_no: int) -> None:
        dest = str(base / f"dir-{round_no}") if kind == "dir" else f"s3://{bucket}/round-{round_no}"
        name = f"bench-{round_no}"
        made = measure([*cli, "create", "--config", str(src), "--dest", dest, "--name", name], env, base)
        samples.keep(f"{kind} create", made)
        samples.keep(f"{kind} verify", measure([*cli, "verify", name, "--dest", dest], env, base))
        target = config(pg.create_database(f"bench_{kind}_{round_no}"))
        samples.keep(f"{kind} restore", measure([*cli, "restore", name, "--dest", dest, "--config", str(target)], env, base))

    for round_no in range(args.repeat):
        order = ("dir", "s3") if round_no % 2 == 0 else ("s3", "dir")
        for kind in order:
            one(kind, round_no)
        print(f"  round {round_no + 1}/{args.repeat} done ({' then '.join(order)})", flush=True)

    print(f"\nsettings: {args.rows:,} rows, {args.repeat} interleaved rounds, part size {args.part_size_mb} MiB, "
          f"the test tier's PostgreSQL 15, s3s-fs on loopback, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'command':10} {'dir s':>8} {'s3 s':>8} {'s3/dir':>7} {'dir MiB':>8} {'s3 MiB':>8}   samples dir | s3")
    out: dict[str, Any] = {"rows": args.rows, "repeat": args.repeat, "part_size_mb": args.part_size_mb, "commands": {}}
    for command in COMMANDS:
        d, s = samples[f"dir {command}"], samples[f"s3 {command}"]
        ratio = s["seconds"] / d["seconds"]
        print(
            f"{command:10} {d['seconds']:8.2f} {s['seconds']:8.2f} {ratio:7.2f} {d['peak_mib']:8.1f} {s['peak_mib']:8.1f}"
            f"   {d['runs']} | {s['runs']}"
        )
        out["commands"][command] = {"dir": d, "s3": s, "ratio": ratio}
    return out


if __name__ == "__main__":
    main()
