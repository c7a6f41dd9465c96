"""Benchmark: ``baselinr migrate`` against Alembic, side by side in one run.

Same database, same SQL, both as a user ships them: a source tree with 100
small migrations (``CREATE TABLE bench_N`` plus an index) laid out the way
each tool expects. Measures, as medians of wall time of real processes:

  (a) ``baselinr migrate status`` vs ``alembic current`` (100 applied),
  (b) applying the chain of 100 on an empty database vs ``alembic upgrade head``,

on SQLite and PostgreSQL (a throw-away server started here), and prints each
ratio (ours / Alembic; lower is better; goals: status <= 0.7, chain <= 0.8).

Run: python bench/migrate_vs_alembic.py [--repeat 7] [--chain 100]
Not a test: timings on shared machines are noisy and never gate CI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sql_for(i: int) -> str:
    return f"CREATE TABLE bench_{i} (id INTEGER PRIMARY KEY, name VARCHAR(50)); CREATE INDEX ix_bench_{i} ON bench_{i} (name)"


def make_baselinr_tree(dest: Path, n: int) -> Path:
    """A copy of the baselinr package whose chain is the n benchmark migrations."""
    tree = dest / "baselinr-tree"
    shutil.copytree(ROOT / "baselinr", tree / "baselinr", ignore=shutil.ignore_patterns("__pycache__"))
    versions = tree / "baselinr/storage/migrations/versions"
    for f in versions.glob("v*.py"):
        f.unlink()
    imports, names = [], []
    for i in range(1, n + 1):
        (versions / f"v{i}_bench.py").write_text(
            f'"""Benchmark migration {i}."""\nfrom ..manager import Migration\n\n'
            f"migration = Migration(version={i}, description='bench {i}', up_sql={sql_for(i)!r})\n"
        )
        imports.append(f"from .v{i}_bench import migration as v{i}_migration")
        names.append(f"v{i}_migration")
    (versions / "__init__.py").write_text(
        '"""Migration versions."""\n'
        + "\n".join(imports)
        + "\n\nALL_MIGRATIONS = [\n"
        + "".join(f"    {x},\n" for x in names)
        + "]\n"
    )
    (tree / "baselinr/storage/schema_version.py").write_text(
        f'"""Benchmark schema version."""\n\nCURRENT_SCHEMA_VERSION = {n}\n\nVERSION_HISTORY = {{}}\n'
    )
    return tree


def make_alembic_tree(dest: Path, n: int, url: str) -> Path:
    tree = dest / "alembic-tree"
    (tree / "versions").mkdir(parents=True)
    (tree / "alembic.ini").write_text(
        f"[alembic]\nscript_location = {tree}\nsqlalchemy.url = {url.replace('%', '%%')}\n\n"
        "[loggers]\nkeys = root\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n"
        "[logger_root]\nlevel = WARN\nhandlers = console\n[handler_console]\nclass = StreamHandler\n"
        "args = (sys.stderr,)\nlevel = NOTSET\nformatter = generic\n[formatter_generic]\nformat = %%(message)s\n"
    )
    (tree / "env.py").write_text(
        "from alembic import context\nfrom sqlalchemy import engine_from_config, pool\n\n"
        "config = context.config\n"
        "section = config.get_section(config.config_ini_section)\n"
        "connectable = engine_from_config(section, prefix='sqlalchemy.', poolclass=pool.NullPool)\n"
        "with connectable.connect() as connection:\n"
        "    context.configure(connection=connection)\n"
        "    with context.begin_transaction():\n"
        "        context.run_migrations()\n"
    )
    (tree / "script.py.mako").write_text("")
    for i in range(1, n + 1):
        down = f"{i - 1:04d}" if i > 1 else None
        stmts = "".join(f"    op.execute({s.strip()!r})\n" for s in sql_for(i).split(";"))
        (tree / "versions" / f"{i:04d}_bench.py").write_text(
            f'"""bench {i}"""\nfrom alembic import op\n\nrevision = "{i:04d}"\ndown_revision = {down!r}\n'
            "branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n" + stmts + "\n\ndef downgrade():\n    pass\n"
        )
    return tree


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def median(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


Fresh = Callable[[], tuple[str, dict[str, object]]]


def run_dialect(name: str, work: Path, repeat: int, n: int, fresh: Fresh) -> list[tuple[str, float, float]]:
    import yaml

    rows = []
    ours_tree = make_baselinr_tree(work / name, n)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ours_tree)

    def config_for(c: dict[str, object]) -> Path:
        p = work / name / f"config-{time.monotonic_ns()}.yml"
        p.write_text(yaml.safe_dump({"storage": {"connection": c}}))
        return p

    baselinr = [sys.executable, "-m", "baselinr", "migrate"]
    # (b) the chain, each run on a fresh database.
    ours_apply, theirs_apply = [], []
    alembic_tree = make_alembic_tree(work / name / "alembic", n, "sqlite://")
    ini_path = alembic_tree / "alembic.ini"
    ini_text = ini_path.read_text()
    for _ in range(max(3, repeat // 2)):
        _, conn_a = fresh()
        ours_apply.append(timed([*baselinr, "apply", "-c", str(config_for(conn_a))], env, work))
        url_b, _ = fresh()
        # One source tree for every run (compiled once, as ours), pointed at the new database.
        ini_path.write_text(ini_text.replace("sqlalchemy.url = sqlite://", f"sqlalchemy.url = {url_b.replace('%', '%%')}"))
        alembic = [sys.executable, "-m", "alembic", "-c", str(alembic_tree / "alembic.ini")]
        theirs_apply.append(timed([*alembic, "upgrade", "head"], env, work))
    # (a) status with n applied, on the last databases of each.
    cfg = config_for(conn_a)
    ini = str(alembic_tree / "alembic.ini")
    ours_status = [timed([*baselinr, "status", "-c", str(cfg)], env, work) for _ in range(repeat)]
    theirs_status = [timed([sys.executable, "-m", "alembic", "-c", ini, "current"], env, work) for _ in range(repeat)]
    rows.append((f"{name}: status ({n} applied)", statistics.median(ours_status), statistics.median(theirs_status)))
    rows.append((f"{name}: apply chain of {n}", statistics.median(ours_apply), statistics.median(theirs_apply)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--chain", type=int, default=100)
    parser.add_argument("--dialects", default="sqlite,postgres")
    args = parser.parse_args()
    results: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="baselinr-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        if "sqlite" in args.dialects:
            counter = iter(range(10_000))

            def fresh_sqlite() -> tuple[str, dict[str, object]]:
                path = work / f"db-{next(counter)}.sqlite"
                return f"sqlite:///{path}", {"type": "sqlite", "database": "bench", "filepath": str(path)}

            results += run_dialect("sqlite", work, args.repeat, args.chain, fresh_sqlite)
        if "postgres" in args.dialects:
            from sqlalchemy.engine import URL

            from tests.support.servers import start_postgres

            server = start_postgres(work)
            try:

                def fresh_pg() -> tuple[str, dict[str, object]]:
                    db = server.create_database("bench")
                    url = URL.create("postgresql+psycopg2", server.user, server.password, server.host, server.port, db)
                    return url.render_as_string(hide_password=False), server.connection(db)

                results += run_dialect("postgres", work, args.repeat, args.chain, fresh_pg)
            finally:
                server.stop()
    print(f"\n{'measurement':40} {'baselinr':>10} {'alembic':>10} {'ratio':>7}")
    for label, ours, theirs in results:
        print(f"{label:40} {ours * 1000:8.0f}ms {theirs * 1000:8.0f}ms {ours / theirs:7.2f}")


if __name__ == "__main__":
    main()
