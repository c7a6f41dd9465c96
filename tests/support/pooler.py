"""A real PgBouncer (Debian's ``pgbouncer``) in front of the test PostgreSQL, for the pooler tests.

``tests/conftest.py`` starts one per pooling mode for the session, on a free
loopback port, with small pools: a client's transactions land on whichever
server connection is free, as production's transaction pooling does. Every
database of the server is served (``* =``); a ``Pooler`` hands out
``storage.connection`` mappings through the pooler, while the ``Server``
under it stays reachable directly (to look at ``pg_locks``, or to create
databases). Stopped by process id, like the servers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.servers import Server, _as_user, _children, _chown, _signal, _wait, free_port

# Small pools. In session pooling each client connection keeps a server connection, and one
# runner holds up to six at once (the lock, the migrations', a Python migration's and its
# backfill's, the DDL lock guard's look-up); in transaction pooling a few serve everyone.
POOL_SIZE = {"transaction": 3, "session": 6, "statement": 3}


def _pgbouncer() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
    if not found:
        raise RuntimeError("PgBouncer not found: install the 'pgbouncer' Debian package (scripts/setup does)")
    return found


@dataclass
class Pooler:
    """A running PgBouncer in ``mode`` in front of ``server``."""

    mode: str
    host: str
    port: int
    server: Server
    proc: subprocess.Popen[bytes]
    root: Path

    def create_database(self, prefix: str = "pool") -> str:
        return self.server.create_database(prefix)

    def connection(self, database: str) -> dict[str, Any]:
        """A ``storage.connection`` mapping for ``database``, through the pooler."""
        return {**self.server.connection(database), "host": self.host, "port": self.port}

    def stop(self) -> None:
        if self.proc.poll() is None:
            # SIGTERM: immediate shutdown (SIGINT would wait for every client to leave). To PgBouncer
            # itself: runuser, signalled, would wait two seconds before it kills its child.
            for pid in _children(self.proc.pid) or [self.proc.pid]:
                _signal(pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _killpg(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def start_pgbouncer(server: Server, base: Path, mode: str, pool_size: int | None = None) -> Pooler:
    """PgBouncer in ``mode`` (session, transaction or statement) on a free loopback port."""
    root = base / f"pgbouncer-{mode}-{uuid.uuid4().hex[:6]}"
    root.mkdir(parents=True)
    _chown(root, "postgres")
    port = free_port()
    users, ini, log = root / "userlist.txt", root / "pgbouncer.ini", root / "pgbouncer.log"
    users.write_text(f"{_quote(server.user)} {_quote(server.password)}\n")
    ini.write_text(
        "[databases]\n"
        f"* = host={server.host} port={server.port}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = scram-sha-256\n"
        f"auth_file = {users}\n"
        f"pool_mode = {mode}\n"
        f"default_pool_size = {pool_size or POOL_SIZE[mode]}\n"
        "max_client_conn = 500\n"
        # A client that waits longer than this for a server connection is refused.
        "query_wait_timeout = 120\n"
        "server_login_retry = 1\n"
        f"pidfile = {root / 'pgbouncer.pid'}\n"
    )
    for path in (users, ini):
        path.chmod(0o600)
        _chown(path, "postgres")
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [*_as_user("postgres"), _pgbouncer(), str(ini)], stdout=logf, stderr=subprocess.STDOUT, start_new_session=True
        )

    def ready() -> bool:
        with socket.socket() as probe:
            probe.settimeout(1)
            return probe.connect_ex(("127.0.0.1", port)) == 0

    _wait(ready, 30, f"PgBouncer ({mode})", log, proc)
    # Wait until a real query passes through it (authentication and the server behind it).
    import psycopg2

    def answers() -> bool:
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=port, user=server.user, password=server.password, dbname="postgres")
        except psycopg2.OperationalError:
            return False
        conn.close()
        return True

    deadline = time.monotonic() + 30
    while not answers():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"PgBouncer ({mode}) does not pass queries:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return Pooler(mode, "127.0.0.1", port, server, proc, root)


class Poolers:
    """One PgBouncer per pooling mode in front of ``server``, started on first use, stopped together."""

    def __init__(self, server: Server, base: Path) -> None:
        self.server, self.base = server, base
        self._started: dict[str, Pooler] = {}

    def get(self, mode: str) -> Pooler:
        if mode not in self._started:
            self._started[mode] = start_pgbouncer(self.server, self.base, mode)
        return self._started[mode]

    def stop(self) -> None:
        for pooler in self._started.values():
            pooler.stop()
