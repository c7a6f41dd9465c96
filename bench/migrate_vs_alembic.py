"""Benchmark: ``baselinr migrate`` against Alembic and dbmate, side by side in one run.

Same database, same SQL, each tool as a user ships it: a source tree with 100
small migrations (``CREATE TABLE bench_N`` plus an index) laid out the way
each tool expects. Measures, as medians of wall time of real processes:

  (a) status with 100 applied: ``baselinr migrate status`` vs ``alembic current``
      vs ``dbmate status``,
  (b) applying the chain of 100 on an empty database: ``baselinr migrate apply``
      vs ``alembic upgrade head`` vs ``dbmate up``,
  (c) a no-op apply, everything already applied (same three commands),
  (d) a cold ``status`` on an empty database, nothing applied (baselinr exits 1
      there by design: "schema behind"),

on SQLite and PostgreSQL (a throw-away server started here), and prints one
table with each ratio (ours / theirs; lower is better; goals against Alembic:
status <= 0.7, chain <= 0.8).

dbmate (a Go binary) comes from the npm package ``@dbmate/linux-x64`` at a
pinned version, installed by ``npm`` once per machine under
``~/.cache/baselinr-bench/``. Without npm, or if that install fails, dbmate is
left out (one line says so) and the Alembic comparison runs alone; so it does
with ``--no-dbmate``.

Run: python bench/migrate_vs_alembic.py [--repeat 7] [--chain 100] [--dialects sqlite,postgres] [--no-dbmate]
Not a test: timings on shared machines are noisy and never gate CI.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from tests.support.servers import Server

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DBMATE_VERSION = "2.36.0"
DBMATE_PACKAGE = f"@dbmate/linux-x64@{DBMATE_VERSION}"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "baselinr-bench"
GOALS = {"status": 0.7, "chain": 0.8}  # ours / Alembic


def sql_for(i: int) -> str:
    return f"CREATE TABLE bench_{i} (id INTEGER PRIMARY KEY, name VARCHAR(50)); CREATE INDEX ix_bench_{i} ON bench_{i} (name)"


# --- dbmate: installed from npm, once per machine ------------------------------


def dbmate_binary() -> Path | None:
    """The pinned dbmate binary, installed into the cache when missing; None (and a line saying why) if it can't be."""
    home = CACHE / f"dbmate-{DBMATE_VERSION}"
    binary = home / "node_modules/@dbmate/linux-x64/bin/dbmate"
    if binary.is_file():
        return binary
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return _left_out(f"{DBMATE_PACKAGE} is for Linux x86-64, this is {platform.system()} {platform.machine()}")
    npm = shutil.which("npm")
    if npm is None:
        return _left_out("npm not found")
    # Install beside the cache entry, then move it in: an interrupted install never looks complete.
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{home.name}.partial-", dir=CACHE))
    except OSError as exc:
        return _left_out(f"cannot write {CACHE}: {exc}")
    try:
        cmd = [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--loglevel=error", DBMATE_PACKAGE]
        print(f"installing dbmate {DBMATE_VERSION}: {' '.join(cmd[1:])}", file=sys.stderr)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            return _left_out(f"'npm install {DBMATE_PACKAGE}' failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        if not (staging / binary.relative_to(home)).is_file():
            return _left_out(f"'npm install {DBMATE_PACKAGE}' installed no {binary.relative_to(home)}")
        try:
            staging.rename(home)
        except OSError:
            if not binary.is_file():  # not a concurrent run that got there first
                raise
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _left_out(f"installing {DBMATE_PACKAGE} failed: {exc}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return binary


def _left_out(why: str) -> None:
    print(f"dbmate left out: {why}; comparing with Alembic only.", file=sys.stderr)
    return None


# --- the three source trees -----------------------------------------------------


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


def make_alembic_tree(dest: Path, n: int) -> Path:
    """An Alembic script directory with the n benchmark revisions; see ``alembic_ini`` for the database."""
    tree = dest / "alembic-tree"
    (tree / "versions").mkdir(parents=True)
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


def alembic_ini(tree: Path, url: str) -> Path:
    """An ``alembic.ini`` for one database; every one shares the same (compiled once) script directory."""
    ini = tree.parent / f"alembic-{time.monotonic_ns()}.ini"
    ini.write_text(
        f"[alembic]\nscript_location = {tree}\nsqlalchemy.url = {url.replace('%', '%%')}\n\n"
        "[loggers]\nkeys = root\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n"
        "[logger_root]\nlevel = WARN\nhandlers = console\n[handler_console]\nclass = StreamHandler\n"
        "args = (sys.stderr,)\nlevel = NOTSET\nformatter = generic\n[formatter_generic]\nformat = %%(message)s\n"
    )
    return ini


def make_dbmate_tree(dest: Path, n: int) -> Path:
    """dbmate's ``db/migrations`` with the n benchmark migrations (up only, as for the others)."""
    migrations = dest / "dbmate-tree/db/migrations"
    migrations.mkdir(parents=True)
    for i in range(1, n + 1):
        (migrations / f"{i:04d}_bench.sql").write_text(f"-- migrate:up\n{sql_for(i)};\n\n-- migrate:down\n")
    return migrations


# --- timing -----------------------------------------------------------------------


def timed(cmd: list[str], env: dict[str, str], cwd: Path, expect: int = 0) -> float:
    """Wall time of one process, which must exit with ``expect``."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != expect:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}, not {expect}:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


@dataclass(frozen=True)
class Database:
    """One fresh, empty database, as each tool is told where it is."""

    sqlalchemy_url: str
    connection: dict[str, object]
    dbmate_url: str


Fresh = Callable[[], Database]


@dataclass(frozen=True)
class Row:
    """Medians of one measurement, in seconds; dbmate is None when left out."""

    label: str
    baselinr: float
    alembic: float
    dbmate: float | None
    goal: str | None = None  # a key of GOALS

    @classmethod
    def of(cls, label: str, medians: dict[str, float], goal: str | None = None) -> Row:
        return cls(label, medians["baselinr"], medians["alembic"], medians.get("dbmate"), goal)


class Tools:
    """Each tool's source tree for one dialect, and its commands against a database of its own."""

    def __init__(self, work: Path, n: int, dbmate: Path | None) -> None:
        self.work = work
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env["PYTHONPATH"] = str(make_baselinr_tree(work, n))
        self.alembic_tree = make_alembic_tree(work, n)
        self.dbmate = dbmate
        self.dbmate_dir = make_dbmate_tree(work, n)
        self.names = ["baselinr", "alembic", *(["dbmate"] if dbmate else [])]

    def status(self, dbs: dict[str, Database]) -> dict[str, list[str]]:
        return self._commands(dbs, "status", ["current"], "status")

    def apply(self, dbs: dict[str, Database]) -> dict[str, list[str]]:
        return self._commands(dbs, "apply", ["upgrade", "head"], "up")

    def _commands(self, dbs: dict[str, Database], ours: str, alembic: list[str], dbmate: str) -> dict[str, list[str]]:
        import yaml

        config = self.work / f"config-{time.monotonic_ns()}.yml"
        config.write_text(yaml.safe_dump({"storage": {"connection": dbs["baselinr"].connection}}))
        ini = alembic_ini(self.alembic_tree, dbs["alembic"].sqlalchemy_url)
        cmds = {
            "baselinr": [sys.executable, "-m", "baselinr", "migrate", ours, "-c", str(config)],
            "alembic": [sys.executable, "-m", "alembic", "-c", str(ini), *alembic],
        }
        if self.dbmate:
            url, migrations = dbs["dbmate"].dbmate_url, str(self.dbmate_dir)
            cmds["dbmate"] = [str(self.dbmate), "--url", url, "--migrations-dir", migrations, "--no-dump-schema", dbmate]
        return cmds

    def time(self, cmd: list[str], expect: int = 0) -> float:
        return timed(cmd, self.env, self.work, expect)

    def medians(self, cmds: dict[str, list[str]], repeat: int, expect: dict[str, int] | None = None) -> dict[str, float]:
        codes = expect or {}
        return {t: statistics.median(self.time(cmd, codes.get(t, 0)) for _ in range(repeat)) for t, cmd in cmds.items()}


def run_dialect(name: str, work: Path, repeat: int, n: int, fresh: Fresh, dbmate: Path | None) -> list[Row]:
    tools = Tools(work / name, n, dbmate)
    # (b) the chain, each run on fresh databases; the tools take turns.
    chain: dict[str, list[float]] = {t: [] for t in tools.names}
    applied: dict[str, Database] = {}
    for _ in range(max(3, repeat // 2)):
        applied = {t: fresh() for t in tools.names}
        for t, cmd in tools.apply(applied).items():
            chain[t].append(tools.time(cmd))
    # (a) status and (c) a no-op apply: on the last of those databases, n applied.
    # (d) a cold status on empty databases: baselinr exits 1 there (not initialized), by design.
    empty = {t: fresh() for t in tools.names}
    return [
        Row.of(f"{name}: status ({n} applied)", tools.medians(tools.status(applied), repeat), "status"),
        Row.of(f"{name}: apply chain of {n}", {t: statistics.median(v) for t, v in chain.items()}, "chain"),
        Row.of(f"{name}: no-op apply ({n} applied)", tools.medians(tools.apply(applied), repeat)),
        Row.of(f"{name}: status, cold (0 applied)", tools.medians(tools.status(empty), repeat, {"baselinr": 1})),
    ]


# --- the databases ------------------------------------------------------------------


def sqlite_databases(work: Path) -> Fresh:
    counter = iter(range(10_000))

    def fresh() -> Database:
        path = work / f"db-{next(counter)}.sqlite"
        return Database(
            f"sqlite:///{path}",
            {"type": "sqlite", "database": "bench", "filepath": str(path)},
            f"sqlite:{quote(str(path))}",
        )

    return fresh


def postgres_databases(server: Server) -> Fresh:
    from sqlalchemy.engine import URL

    def fresh() -> Database:
        db = server.create_database("bench")
        url = URL.create("postgresql+psycopg2", server.user, server.password, server.host, server.port, db)
        auth = f"{quote(server.user, safe='')}:{quote(server.password, safe='')}"
        return Database(
            url.render_as_string(hide_password=False),
            server.connection(db),
            f"postgres://{auth}@{server.host}:{server.port}/{db}?sslmode=disable",
        )

    return fresh


# --- output ---------------------------------------------------------------------------


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"


def ratio(ours: float, theirs: float | None) -> str:
    return "-" if theirs is None else f"{ours / theirs:.2f}"


def print_table(rows: list[Row]) -> None:
    width = max(len("measurement"), *(len(r.label) for r in rows))
    print(f"\n{'measurement':{width}} {'baselinr':>9} {'alembic':>9} {'dbmate':>9} {'vs alembic':>11} {'vs dbmate':>10}")
    for r in rows:
        cells = f"{ms(r.baselinr):>9} {ms(r.alembic):>9} {ms(r.dbmate):>9}"
        print(f"{r.label:{width}} {cells} {ratio(r.baselinr, r.alembic):>11} {ratio(r.baselinr, r.dbmate):>10}")
    checks = [
        f"{r.label} {r.baselinr / r.alembic:.2f} {'met' if r.baselinr / r.alembic <= GOALS[r.goal] else 'MISSED'}"
        for r in rows
        if r.goal
    ]
    goals = ", ".join(f"{k} <= {v}" for k, v in GOALS.items())
    print(f"\ngoals vs alembic ({goals}): " + "; ".join(checks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--chain", type=int, default=100)
    parser.add_argument("--dialects", default="sqlite,postgres")
    parser.add_argument("--no-dbmate", action="store_true", help="compare with Alembic only")
    args = parser.parse_args()
    dbmate = None if args.no_dbmate else dbmate_binary()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="baselinr-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        if "sqlite" in args.dialects:
            rows += run_dialect("sqlite", work, args.repeat, args.chain, sqlite_databases(work), dbmate)
        if "postgres" in args.dialects:
            from tests.support.servers import start_postgres

            server = start_postgres(work)
            try:
                rows += run_dialect("postgres", work, args.repeat, args.chain, postgres_databases(server), dbmate)
            finally:
                server.stop()
    print_table(rows)


if __name__ == "__main__":
    main()
