"""Real PostgreSQL and MariaDB servers for the test suite, started and stopped here.

The servers come from Debian's packages (``scripts/test`` installs them);
each is initialised in a fresh temporary directory, listens on a free
loopback port with password authentication, and is stopped by process id at
the end of the session. When running as root, the server processes run as
the packages' own system users, since neither server runs as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Passwords with URL-special characters: they must survive config, URL and driver.
PG_PASSWORD = "pg p@ss:w/rd%1"
MYSQL_PASSWORD = "my p@ss:w/rd%2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user(user: str) -> list[str]:
    return ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []


def _chown(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user, user)


def _wait(check: Callable[[], bool], timeout: float, what: str, log: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not become ready in {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


@dataclass
class Server:
    """A running server and how to reach it as an admin and as the test user."""

    kind: str
    host: str
    port: int
    user: str
    password: str
    proc: subprocess.Popen[bytes]
    root: Path
    admin: Callable[[str], None]
    databases: list[str] = field(default_factory=list)

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.admin(f"CREATE DATABASE {name}")
        self.databases.append(name)
        return name

    def connection(self, database: str) -> dict[str, Any]:
        """A ``storage.connection`` mapping for ``database``."""
        return {
            "type": self.kind,
            "host": self.host,
            "port": self.port,
            "database": database,
            "username": self.user,
            "password": self.password,
        }

    def stop(self) -> None:
        """Shut the server down (fast shutdown for PostgreSQL) and remove its files.

        The server runs under ``runuser``, which does not pass signals on to its child, so the
        server process itself is signalled too and waited for; a server that does not stop in
        time is killed, never left running.
        """
        servers = _children(self.proc.pid)
        if self.proc.poll() is None or any(_alive(pid) for pid in servers):
            sig = signal.SIGINT if self.kind == "postgres" else signal.SIGTERM
            for pid in [*servers, self.proc.pid]:
                _signal(pid, sig)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (self.proc.poll() is None or any(_alive(pid) for pid in servers)):
                time.sleep(0.05)
            for pid in [*servers, self.proc.pid]:
                _signal(pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _pg_bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return candidates[-1]
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: install the 'postgresql' Debian package (scripts/test does)")
    return found


def pg_admin(port: int) -> tuple[Callable[[str], None], Callable[[], bool]]:
    """For a test PostgreSQL on ``port``: run one statement as its superuser, and whether it answers yet."""
    import psycopg2

    def admin(sql: str) -> None:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", password=PG_PASSWORD, dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def ready() -> bool:
        try:
            admin("SELECT 1")
            return True
        except psycopg2.OperationalError:
            return False

    return admin, ready


def start_postgres(
    base: Path,
    install: Path | None = None,
    env: dict[str, str] | None = None,
    *,
    bridge: tuple[str, str] | None = None,
) -> Server:
    """A PostgreSQL server of Debian's package, or of the binaries under ``install`` (its
    ``bin/``; ``env`` for them, e.g. ``LD_LIBRARY_PATH``), on loopback.

    With ``bridge`` = (address, subnet) it also listens on that address (the real node tier's),
    clients in ``subnet`` (its pods) may log in with a password, and :class:`Server` names the
    bridge address, which both the tests and the pods reach.
    """
    root = base / f"pg-{uuid.uuid4().hex[:6]}"
    root.mkdir(parents=True)

    def binary(name: str) -> str:
        return str(install / "bin" / name) if install is not None else _pg_bin(name)

    run_env = {**os.environ, **(env or {})}
    _chown(root, "postgres")
    data, log = root / "data", root / "server.log"
    pwfile = root / "pw"
    pwfile.write_text(PG_PASSWORD + "\n")
    _chown(pwfile, "postgres")
    subprocess.run(
        [
            *_as_user("postgres"),
            binary("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        check=True,
        capture_output=True,
        env=run_env,
    )
    listen = "127.0.0.1"
    if bridge is not None:
        listen += f",{bridge[0]}"
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {bridge[1]} scram-sha-256\n")
    port = free_port()
    with open(log, "wb") as logf:
        _chown(log, "postgres")
        proc = subprocess.Popen(
            [
                *_as_user("postgres"),
                binary("postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(root),
                "-c",
                f"listen_addresses={listen}",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "max_connections=200",
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=run_env,
        )

    admin, ready = pg_admin(port)
    _wait(ready, 60, "PostgreSQL", log, proc)
    host = bridge[0] if bridge is not None else "127.0.0.1"
    return Server("postgres", host, port, "postgres", PG_PASSWORD, proc, root, admin)


def start_mariadb(base: Path, *, bridge: tuple[str, str] | None = None) -> Server:
    """Start MariaDB on loopback; with ``bridge`` = (address, subnet) also on that address (see start_postgres)."""
    root = base / f"maria-{uuid.uuid4().hex[:6]}"
    root.mkdir(parents=True)
    _chown(root, "mysql")
    data, log, sock = root / "data", root / "server.log", root / "mysqld.sock"
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    server = shutil.which("mariadbd") or shutil.which("mysqld") or "/usr/sbin/mariadbd"
    if not install or not os.path.exists(server):
        raise RuntimeError("MariaDB not found: install the 'mariadb-server' Debian package (scripts/test does)")
    user = ["--user=mysql"] if os.geteuid() == 0 else []
    subprocess.run(
        [install, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal", "--skip-test-db", *user],
        check=True,
        capture_output=True,
    )
    port = free_port()
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [
                server,
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={sock}",
                f"--port={port}",
                "--bind-address=127.0.0.1" + (f",{bridge[0]}" if bridge is not None else ""),
                f"--pid-file={root / 'mysqld.pid'}",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=128M",
                "--innodb-flush-log-at-trx-commit=0",
                "--max-connections=200",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                *user,
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    import pymysql

    def root_conn() -> Any:
        return pymysql.connect(unix_socket=str(sock), user="root", autocommit=True)

    def admin(sql: str) -> None:
        conn = root_conn()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def ready() -> bool:
        # Probe the socket ourselves first: PyMySQL leaks its socket when a
        # unix-socket connect is refused.
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(sock))
            except OSError:
                return False
        try:
            admin("SELECT 1")
            return True
        except pymysql.err.OperationalError:
            return False

    _wait(ready, 60, "MariaDB", log, proc)
    escaped = MYSQL_PASSWORD.replace("'", "''")
    hosts = ["127.0.0.1", "localhost"]
    if bridge is not None:
        network, prefix = bridge[1].split("/")
        if prefix != "24":
            raise ValueError(f"start_mariadb: bridge subnet {bridge[1]}: only a /24 is supported")
        hosts += [bridge[0], network.rsplit(".", 1)[0] + ".%"]
    for host in hosts:
        admin(f"CREATE USER 'baselinr'@'{host}' IDENTIFIED BY '{escaped}'")
        admin(f"GRANT ALL PRIVILEGES ON *.* TO 'baselinr'@'{host}'")
    host = bridge[0] if bridge is not None else "127.0.0.1"
    return Server("mysql", host, port, "baselinr", MYSQL_PASSWORD, proc, root, admin)
