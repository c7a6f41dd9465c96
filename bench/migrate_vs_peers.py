"""Benchmark: ``baselinr migrate`` against Alembic, dbmate and Flyway, like with like, in one run.

Each tool gets the same N small migrations (``CREATE TABLE bench_i`` plus an
index), laid out the way a user of that tool ships them, and runs as its own
process against a database of its own. For each scale N (``--scales``,
default 10,100,1000) and each database it measures the wall time of:

  apply   N migrations on an empty database: ``baselinr migrate apply``,
          ``alembic upgrade head`` (twice: Alembic's default single
          transaction, and ``transaction_per_migration=True``, which commits
          each migration with its version row as baselinr, dbmate and Flyway
          do), ``dbmate migrate``, ``flyway migrate``;
  status  with N applied: ``baselinr migrate status``, ``alembic current``
          (the same command in both Alembic modes, so run once),
          ``dbmate status``, ``flyway info``;
  no-op   apply with N applied (the operator's Jobs and Helm hooks run one
          on every sync): the apply commands again.

Rounds are interleaved: every round creates fresh databases, then each tool
applies in turn, then each runs status in turn, then the no-op; the order of
the tools rotates from round to round, so no tool's repeats run back to back
and none always goes first. One untimed warm-up round comes first (byte code,
the JVM's class data, the page cache). Prints medians of ``--repeat`` rounds
(default 7, at least 5) and each ratio ours / peer, lower is better, with the
goals of issue 15 beside them.

PostgreSQL is a durable server started here (fsync, synchronous_commit and
full_page_writes on, the server defaults; the test fixtures' server turns
them off), with its data directory on disk; the header prints the settings as
the server reports them. SQLite runs with each tool's driver defaults.

dbmate (a Go binary) is the npm package ``@dbmate/linux-x64`` at a pinned
version; Flyway is the command-line distribution from Maven Central
(``org.flywaydb:flyway-commandline``, the ``.tar.gz`` without a bundled JRE,
run on the machine's Java 17; from 11.9 on Maven Central publishes the
jar alone, without the launcher and drivers), checked against a pinned
SHA-256. Both are installed once per machine under
``~/.cache/baselinr-bench/``; one that cannot be installed is left out with
one line saying why, and the rest runs.

The baselinr measured is whatever ``python -m baselinr`` imports with this
repository first on ``PYTHONPATH``.

Run: python bench/migrate_vs_peers.py [--repeat 7] [--scales 10,100,1000] [--dialects postgres,sqlite]
                                      [--no-dbmate] [--no-flyway]
Not a test: timings on shared machines are noisy and never gate CI.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from tests.support.servers import Server

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "baselinr-bench"
DBMATE_VERSION = "2.36.0"
DBMATE_PACKAGE = f"@dbmate/linux-x64@{DBMATE_VERSION}"
FLYWAY_VERSION = "10.22.0"
FLYWAY_URL = (
    f"https://repo1.maven.org/maven2/org/flywaydb/flyway-commandline/{FLYWAY_VERSION}/flyway-commandline-{FLYWAY_VERSION}.tar.gz"
)
FLYWAY_SHA256 = "6cd8a61c54d5141bbb4ccbd6fc5418c545ccad906fa016806efe515a01f2b428"

OURS = "baselinr"
TOOLS = ["baselinr", "alembic", "alembic-tpm", "dbmate", "flyway"]
MEASURES = ["apply", "status", "noop"]
# Issue 15's goals, ours / peer (stated for 100 migrations, shown at every scale).
GOALS: dict[tuple[str, str], float] = {
    ("apply", "alembic-tpm"): 0.6,
    ("apply", "dbmate"): 1.3,
    ("status", "alembic"): 0.3,
    ("status", "flyway"): 0.1,
    ("noop", "flyway"): 0.1,
}


def sql_for(i: int) -> list[str]:
    return [
        f"CREATE TABLE bench_{i} (id INTEGER PRIMARY KEY, name VARCHAR(50))",
        f"CREATE INDEX ix_bench_{i} ON bench_{i} (name)",
    ]


# --- peers installed once per machine ---------------------------------------------


def cached_install(name: str, home: Path, marker: Path, fill: Callable[[Path], None]) -> Path | None:
    """``home/marker`` once ``fill(staging)`` has built ``home`` beside it; None (and a line why) if it cannot."""
    if (home / marker).is_file():
        return home / marker
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{home.name}.partial-", dir=CACHE))
    except OSError as exc:
        return left_out(name, f"cannot write {CACHE}: {exc}")
    try:
        fill(staging)
        if not (staging / marker).is_file():
            return left_out(name, f"the install holds no {marker}")
        try:
            staging.rename(home)  # an interrupted install never looks complete
        except OSError:
            if not (home / marker).is_file():  # not a concurrent run that got there first
                raise
    except (OSError, subprocess.SubprocessError, ValueError, tarfile.TarError) as exc:
        return left_out(name, str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return home / marker


def left_out(name: str, why: str) -> Path | None:
    print(f"{name} left out: {why}", file=sys.stderr)
    return None


def dbmate_binary() -> Path | None:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return left_out("dbmate", f"{DBMATE_PACKAGE} is for Linux x86-64, this is {platform.system()} {platform.machine()}")
    npm = shutil.which("npm")
    if npm is None:
        return left_out("dbmate", "npm not found")

    def fill(staging: Path) -> None:
        cmd = [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--loglevel=error", DBMATE_PACKAGE]
        print(f"installing dbmate {DBMATE_VERSION}: npm {' '.join(cmd[1:])}", file=sys.stderr)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise ValueError(f"'npm install {DBMATE_PACKAGE}' failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")

    home = CACHE / f"dbmate-{DBMATE_VERSION}"
    return cached_install("dbmate", home, Path("node_modules/@dbmate/linux-x64/bin/dbmate"), fill)


def flyway_binary() -> Path | None:
    if shutil.which("java") is None:
        return left_out("flyway", "no java on PATH (the archive without a bundled JRE needs Java 17+)")

    def fill(staging: Path) -> None:
        archive = staging / "flyway.tar.gz"
        print(f"downloading Flyway {FLYWAY_VERSION}: {FLYWAY_URL}", file=sys.stderr)
        digest = hashlib.sha256()
        with urllib.request.urlopen(FLYWAY_URL, timeout=60) as response, open(archive, "wb") as out:
            while block := response.read(1 << 20):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != FLYWAY_SHA256:
            raise ValueError(f"{FLYWAY_URL} has SHA-256 {digest.hexdigest()}, expected {FLYWAY_SHA256}")
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
        archive.unlink()
        launcher = staging / f"flyway-{FLYWAY_VERSION}" / "flyway"
        launcher.chmod(0o755)

    return cached_install("flyway", CACHE / f"flyway-{FLYWAY_VERSION}", Path(f"flyway-{FLYWAY_VERSION}/flyway"), fill)


# --- each tool's source tree --------------------------------------------------------


def make_baselinr_package(dest: Path, n: int) -> tuple[Path, str]:
    """A versions package (``--migrations``) with the n benchmark migrations; returns (its parent, its name)."""
    name = f"bench_versions_{n}"
    pkg = dest / "baselinr-pkg" / name
    pkg.mkdir(parents=True)
    header = "from baselinr.storage.migrations.manager import Migration\n\n"
    for i in range(1, n + 1):
        up = ";\n".join(sql_for(i))
        body = f'migration = Migration(version={i}, description="bench {i}", up_sql={up!r})\n'
        (pkg / f"v{i}_bench.py").write_text(f'"""Benchmark migration {i}."""\n{header}{body}')
    imports = "".join(f"from .v{i}_bench import migration as v{i}\n" for i in range(1, n + 1))
    listed = "".join(f"    v{i},\n" for i in range(1, n + 1))
    (pkg / "__init__.py").write_text(
        f'"""The benchmark chain."""\n{imports}\nALL_MIGRATIONS = [\n{listed}]\nCURRENT_SCHEMA_VERSION = {n}\n'
    )
    return pkg.parent, name


def make_alembic_tree(dest: Path, n: int) -> Path:
    """An Alembic script directory; ``env.py`` reads ``transaction_per_migration`` from the ini."""
    tree = dest / "alembic-tree"
    (tree / "versions").mkdir(parents=True)
    (tree / "env.py").write_text(
        "from alembic import context\nfrom sqlalchemy import engine_from_config, pool\n\n"
        "config = context.config\n"
        "per_migration = config.get_main_option('transaction_per_migration') == 'true'\n"
        "section = config.get_section(config.config_ini_section)\n"
        "connectable = engine_from_config(section, prefix='sqlalchemy.', poolclass=pool.NullPool)\n"
        "with connectable.connect() as connection:\n"
        "    context.configure(connection=connection, transaction_per_migration=per_migration)\n"
        "    with context.begin_transaction():\n"
        "        context.run_migrations()\n"
    )
    (tree / "script.py.mako").write_text("")
    for i in range(1, n + 1):
        down = f"{i - 1:04d}" if i > 1 else None
        stmts = "".join(f"    op.execute({s!r})\n" for s in sql_for(i))
        (tree / "versions" / f"{i:04d}_bench.py").write_text(
            f'"""bench {i}"""\nfrom alembic import op\n\nrevision = "{i:04d}"\ndown_revision = {down!r}\n'
            "branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n" + stmts + "\n\ndef downgrade():\n    pass\n"
        )
    return tree


def make_dbmate_dir(dest: Path, n: int) -> Path:
    migrations = dest / "dbmate/migrations"
    migrations.mkdir(parents=True)
    for i in range(1, n + 1):
        body = "".join(f"{s};\n" for s in sql_for(i))
        (migrations / f"{i:04d}_bench.sql").write_text(f"-- migrate:up\n{body}\n-- migrate:down\n")
    return migrations


def make_flyway_dir(dest: Path, n: int) -> Path:
    migrations = dest / "flyway/sql"
    migrations.mkdir(parents=True)
    for i in range(1, n + 1):
        (migrations / f"V{i}__bench.sql").write_text("".join(f"{s};\n" for s in sql_for(i)))
    return migrations


# --- databases ------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """One fresh, empty database, as each tool is told where it is."""

    name: str
    connection: dict[str, Any]  # baselinr's storage.connection
    sqlalchemy_url: str
    dbmate_url: str
    flyway_args: list[str]


class Dialect:
    """Makes and drops the databases of one dialect, and counts a database's benchmark tables."""

    name = ""

    def fresh(self) -> Database:
        raise NotImplementedError

    def drop(self, db: Database) -> None:
        raise NotImplementedError

    def bench_tables(self, db: Database) -> int:
        raise NotImplementedError


class SQLite(Dialect):
    name = "sqlite"

    def __init__(self, work: Path) -> None:
        self.dir = work / "sqlite"
        self.dir.mkdir()
        self.count = 0

    def fresh(self) -> Database:
        self.count += 1
        path = self.dir / f"db-{self.count}.sqlite"
        conn = {"type": "sqlite", "database": "bench", "filepath": str(path)}
        return Database(str(path), conn, f"sqlite:///{path}", f"sqlite:{quote(str(path))}", [f"-url=jdbc:sqlite:{path}"])

    def drop(self, db: Database) -> None:
        Path(db.name).unlink(missing_ok=True)

    def bench_tables(self, db: Database) -> int:
        with sqlite3.connect(db.name) as conn:
            row = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'bench\\_%' ESCAPE '\\'")
            return int(row.fetchone()[0])


class Postgres(Dialect):
    name = "postgres"

    def __init__(self, server: Server) -> None:
        self.server = server

    def fresh(self) -> Database:
        from sqlalchemy.engine import URL

        s = self.server
        db = s.create_database("bench")
        url = URL.create("postgresql+psycopg2", s.user, s.password, s.host, s.port, db).render_as_string(hide_password=False)
        auth = f"{quote(s.user, safe='')}:{quote(s.password, safe='')}"
        flyway = [f"-url=jdbc:postgresql://{s.host}:{s.port}/{db}", f"-user={s.user}", f"-password={s.password}"]
        return Database(db, s.connection(db), url, f"postgres://{auth}@{s.host}:{s.port}/{db}?sslmode=disable", flyway)

    def drop(self, db: Database) -> None:
        self.server.admin(f"DROP DATABASE {db.name}")
        self.server.databases.remove(db.name)

    def bench_tables(self, db: Database) -> int:
        import psycopg2

        s = self.server
        conn = psycopg2.connect(host=s.host, port=s.port, user=s.user, password=s.password, dbname=db.name)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'bench\\_%'")
                return int(cur.fetchone()[0])
        finally:
            conn.close()


def start_durable_postgres(base: Path) -> Server:
    """A PostgreSQL server with the server's durable defaults (the fixtures' server turns fsync and co. off)."""
    from tests.support import servers

    root = base / "pg-durable"
    root.mkdir(parents=True)
    servers._chown(root, "postgres")
    data, log, pwfile = root / "data", root / "server.log", root / "pw"
    pwfile.write_text(servers.PG_PASSWORD + "\n")
    servers._chown(pwfile, "postgres")
    initdb = [servers._pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
              "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"]  # fmt: skip
    subprocess.run([*servers._as_user("postgres"), *initdb], check=True, capture_output=True)
    port = servers.free_port()
    settings = ["listen_addresses=127.0.0.1", "fsync=on", "synchronous_commit=on", "full_page_writes=on", "max_connections=50"]
    with open(log, "wb") as logf:
        servers._chown(log, "postgres")
        argv = [servers._pg_bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(root)]
        for setting in settings:
            argv += ["-c", setting]
        proc = subprocess.Popen([*servers._as_user("postgres"), *argv], stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip

    admin, ready = servers.pg_admin(port)
    servers._wait(ready, 60, "PostgreSQL", log, proc)
    return servers.Server("postgres", "127.0.0.1", port, "postgres", servers.PG_PASSWORD, proc, root, admin)


def postgres_settings(server: Server) -> str:
    import psycopg2

    conn = psycopg2.connect(host=server.host, port=server.port, user=server.user, password=server.password, dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
            shown = []
            for name in ("fsync", "synchronous_commit", "full_page_writes", "wal_level"):
                cur.execute(f"SHOW {name}")
                shown.append(f"{name}={cur.fetchone()[0]}")
    finally:
        conn.close()
    return f"PostgreSQL {version}, {', '.join(shown)}, data on {filesystem(server.root)}"


def filesystem(path: Path) -> str:
    """The type of the file system ``path`` is on (the longest mount point above it)."""
    best, kind = "", "?"
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        mount = fields[1]
        if str(path.resolve()).startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
            best, kind = mount, fields[2]
    return f"{kind} ({best or '/'})"


# --- the tools' commands --------------------------------------------------------------


@dataclass(frozen=True)
class Peers:
    dbmate: Path | None
    flyway: Path | None

    def tools(self) -> list[str]:
        return [t for t in TOOLS if (t != "dbmate" or self.dbmate) and (t != "flyway" or self.flyway)]


class Commands:
    """Every tool's source tree for one scale, and its command line for one measure and database."""

    def __init__(self, work: Path, n: int, peers: Peers) -> None:
        self.work, self.peers = work, peers
        pkg_root, self.package = make_baselinr_package(work, n)
        self.alembic_tree = make_alembic_tree(work, n)
        self.dbmate_dir = make_dbmate_dir(work, n)
        self.flyway_dir = make_flyway_dir(work, n)
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env["PYTHONPATH"] = os.pathsep.join([str(pkg_root), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
        self.env["REDGATE_DISABLE_TELEMETRY"] = "true"
        self.count = 0

    def _file(self, suffix: str, text: str) -> Path:
        self.count += 1
        path = self.work / f"{self.count}.{suffix}"
        path.write_text(text)
        return path

    def command(self, tool: str, measure: str, db: Database) -> list[str] | None:
        """The command line, or None where the measure has no command of its own for the tool."""
        if tool == OURS:
            import yaml

            config = self._file("yml", yaml.safe_dump({"storage": {"connection": db.connection}}))
            verb = "status" if measure == "status" else "apply"
            return [sys.executable, "-m", "baselinr", "migrate", verb, "-c", str(config), "--migrations", self.package]
        if tool in ("alembic", "alembic-tpm"):
            if tool == "alembic-tpm" and measure == "status":
                return None  # ``alembic current`` does not depend on the transaction mode
            ini = self._file("ini", alembic_ini(self.alembic_tree, db.sqlalchemy_url, tool == "alembic-tpm"))
            args = ["current"] if measure == "status" else ["upgrade", "head"]
            return [sys.executable, "-m", "alembic", "-c", str(ini), *args]
        if tool == "dbmate":
            assert self.peers.dbmate is not None
            verb = "status" if measure == "status" else "migrate"
            return [str(self.peers.dbmate), "--url", db.dbmate_url, "--migrations-dir", str(self.dbmate_dir),
                    "--no-dump-schema", verb]  # fmt: skip
        assert tool == "flyway" and self.peers.flyway is not None
        verb = "info" if measure == "status" else "migrate"
        return [str(self.peers.flyway), *db.flyway_args, f"-locations=filesystem:{self.flyway_dir}", "-skipCheckForUpdate", verb]

    def time(self, cmd: list[str]) -> float:
        """Wall time of one process, which must succeed."""
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=self.env, cwd=self.work, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            words = ("-password=***" if a.startswith("-password=") else a for a in cmd)
            shown = re.sub(r"://[^@/\s]*@", "://***@", " ".join(words))  # no password in the message
            raise SystemExit(f"{shown} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        return elapsed


def alembic_ini(tree: Path, url: str, per_migration: bool) -> str:
    return (
        f"[alembic]\nscript_location = {tree}\nsqlalchemy.url = {url.replace('%', '%%')}\n"
        f"transaction_per_migration = {'true' if per_migration else 'false'}\n\n"
        "[loggers]\nkeys = root\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n"
        "[logger_root]\nlevel = WARN\nhandlers = console\n[handler_console]\nclass = StreamHandler\n"
        "args = (sys.stderr,)\nlevel = NOTSET\nformatter = generic\n[formatter_generic]\nformat = %%(message)s\n"
    )


# --- the rounds -----------------------------------------------------------------------

Samples = dict[str, dict[str, list[float]]]  # measure -> tool -> seconds


def run_scale(dialect: Dialect, n: int, work: Path, peers: Peers, repeat: int) -> Samples:
    """``repeat`` timed rounds (after one warm-up) of every measure, the tools taking turns."""
    cmds = Commands(work / f"{dialect.name}-{n}", n, peers)
    tools = peers.tools()
    samples: Samples = {m: {t: [] for t in tools} for m in MEASURES}
    for round_no in range(repeat + 1):
        timed = round_no > 0
        shift = round_no % len(tools)
        order = tools[shift:] + tools[:shift]
        dbs = {t: dialect.fresh() for t in tools}
        try:
            for measure in MEASURES:  # apply first: status and the no-op then find n applied
                for tool in order:
                    cmd = cmds.command(tool, measure, dbs[tool])
                    if cmd is None:
                        continue
                    seconds = cmds.time(cmd)
                    if timed:
                        samples[measure][tool].append(seconds)
                if measure == "apply" and round_no == 0:
                    for tool in tools:
                        found = dialect.bench_tables(dbs[tool])
                        if found != n:
                            raise SystemExit(f"{tool} applied {found} of {n} migrations on {dialect.name}")
        finally:
            for db in dbs.values():
                dialect.drop(db)
        label = "warm-up" if not timed else f"round {round_no}/{repeat}"
        print(f"  {dialect.name} n={n}: {label} done", file=sys.stderr)
    return samples


# --- output ---------------------------------------------------------------------------

LABELS = {"apply": "apply {n} on an empty database", "status": "status, {n} applied", "noop": "no-op apply, {n} applied"}


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:,.0f} ms" if values else "-"


def ratio_cell(measure: str, peer: str, ours: list[float], theirs: list[float]) -> str:
    if not ours or not theirs:
        return "-"
    r = statistics.median(ours) / statistics.median(theirs)
    goal = GOALS.get((measure, peer))
    if goal is None:
        return f"{r:.2f}"
    return f"{r:.2f} (goal <= {goal}: {'met' if r <= goal else 'MISSED'})"


def print_tables(results: dict[str, dict[int, Samples]], tools: list[str]) -> None:
    peers = [t for t in tools if t != OURS]
    for dialect, scales in results.items():
        print(f"\n### {dialect}\n")
        head = ["measure", *tools, *(f"vs {p}" for p in peers)]
        print("| " + " | ".join(head) + " |")
        print("|---|" + "---:|" * (len(head) - 1))
        for n, samples in scales.items():
            for measure in MEASURES:
                row = samples[measure]
                cells = [LABELS[measure].format(n=f"{n:,}"), *(ms(row[t]) for t in tools)]
                cells += [ratio_cell(measure, p, row[OURS], row[p]) for p in peers]
                print("| " + " | ".join(cells) + " |")


def version_of(cmd: list[str], env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"? ({exc})"
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    return lines[0] if lines else "?"


def print_header(args: argparse.Namespace, peers: Peers, pg: str | None, work: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    ours = version_of([sys.executable, "-c", "import baselinr, os; print(os.path.dirname(baselinr.__file__))"], env)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"# baselinr migrate vs. peers, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {os.cpu_count()} CPUs, load average {load} at start; {platform.platform()}")
    print(f"samples: median of {args.repeat} interleaved rounds after 1 warm-up, tool order rotating; scales {args.scales}")
    print(f"baselinr: {ours} (Python {platform.python_version()})")
    print(f"alembic: {version_of([sys.executable, '-m', 'alembic', '--version'])} (default: one transaction; "
          "alembic-tpm: transaction_per_migration=True)")  # fmt: skip
    if peers.dbmate:
        print(f"dbmate: {version_of([str(peers.dbmate), '--version'])}")
    if peers.flyway:
        java = version_of(["java", "-version"])
        quiet = {**os.environ, "REDGATE_DISABLE_TELEMETRY": "true"}
        fly = version_of([str(peers.flyway), "-skipCheckForUpdate", "version"], quiet)
        print(f"flyway: {fly} ({FLYWAY_URL.rsplit('/', 1)[-1]}), on {java}")
    if pg:
        print(f"postgres: {pg}")
    if "sqlite" in args.dialects:
        print(f"sqlite: files on {filesystem(work)}, each tool's driver defaults (Python's sqlite3 {sqlite3.sqlite_version})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds (at least 5)")
    parser.add_argument("--scales", default="10,100,1000", help="numbers of migrations, comma-separated")
    parser.add_argument("--dialects", default="postgres,sqlite", help="in this order")
    parser.add_argument("--no-dbmate", action="store_true")
    parser.add_argument("--no-flyway", action="store_true")
    args = parser.parse_args()
    if args.repeat < 5:
        parser.error("--repeat must be at least 5")
    try:
        scales = [int(s) for s in args.scales.split(",")]
    except ValueError:
        parser.error("--scales takes numbers, e.g. 10,100,1000")
    dialects = [d.strip() for d in args.dialects.split(",")]
    if not dialects or any(d not in ("sqlite", "postgres") for d in dialects) or min(scales) < 1:
        parser.error("--dialects takes sqlite and/or postgres; --scales numbers >= 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server and remove the files on a kill too
    peers = Peers(None if args.no_dbmate else dbmate_binary(), None if args.no_flyway else flyway_binary())
    # Not /tmp: the durable server's data must be on a disk, and /tmp may be a tmpfs.
    with work_dir() as work:
        server = start_durable_postgres(work) if "postgres" in dialects else None
        try:
            print_header(args, peers, postgres_settings(server) if server else None, work)
            results: dict[str, dict[int, Samples]] = {}
            for name in dialects:
                dialect: Dialect = SQLite(work) if name == "sqlite" else Postgres(server)  # type: ignore[arg-type]
                results[name] = {}
                for n in scales:
                    results[name][n] = run_scale(dialect, n, work, peers, args.repeat)
                    print_tables({name: {n: results[name][n]}}, peers.tools())  # as it goes: a long run shows progress
                    sys.stdout.flush()
        finally:
            if server is not None:
                server.stop()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print("\n## all results")
    print_tables(results, peers.tools())
    print(f"\nload average at the end: {load}. Ratios are ours / peer (lower is better); "
          "goals from issue 15, stated for 100 migrations.")  # fmt: skip


@contextmanager
def work_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="baselinr-bench-migrate-", dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
