"""A Snowflake emulator for the test suite: ``fakesnow`` in server mode, in its own process.

The real ``snowflake-connector-python`` (through ``snowflake-sqlalchemy``)
talks HTTP to it exactly as it talks to Snowflake, so the engine's code path
is the production one; only the host, port and protocol are overridden,
through ``storage.connection.extra_params.connect_args``. DuckDB runs the SQL
underneath: where it cannot express a Snowflake behaviour, the test says so
and checks the rendered SQL instead.

Started once per session by the ``snowflake_server`` fixture and stopped by
process id. Each test gets its own database name (the emulator creates a
database on first login), so tests never see each other's tables. The
emulator accepts any user name and password.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.servers import free_port

# URL-special characters: they must survive config, URL and driver.
SF_PASSWORD = "sf p@ss:w/rd%3"


@dataclass
class SnowflakeEmulator:
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def connect_args(self) -> dict[str, Any]:
        # network_timeout bounds each request: the emulator answers at once or never.
        return {"host": self.host, "port": self.port, "protocol": "http", "network_timeout": 30}

    def connection(self, database: str | None = None, **extra: Any) -> dict[str, Any]:
        """A ``storage.connection`` mapping for a fresh (or the named) database."""
        return {
            "type": "snowflake",
            "account": "baselinr_test",
            "username": "baselinr",
            "password": SF_PASSWORD,
            "database": database or f"t_{uuid.uuid4().hex[:10]}",
            "schema": "PUBLIC",
            "warehouse": "COMPUTE_WH",
            "role": "SYSADMIN",
            "extra_params": {"connect_args": self.connect_args()},
            **extra,
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_emulator(root: Path) -> SnowflakeEmulator:
    """Start ``python -m fakesnow --server`` on a free loopback port and wait until it answers."""
    import socket

    port = free_port()
    log = root / f"fakesnow-{port}.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fakesnow", "--server", "--host", "127.0.0.1", "--port", str(port)],
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fakesnow exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return SnowflakeEmulator("127.0.0.1", port, proc, log)
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError(f"fakesnow did not start in 60s:\n{log.read_text(errors='replace')[-3000:]}")
