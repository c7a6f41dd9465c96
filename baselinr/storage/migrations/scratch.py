"""The scratch database ``migrate test`` runs on: which one, and whether it is empty.

Called by ``selftest.run_selftest`` (the refusal) and by the CLI
(``baselinr.cli.selftest``) to turn ``--database URL`` into connection
settings, or to make the default: a fresh SQLite file in a temporary,
owner-only directory. A database that holds any table or view is refused
before anything runs: ``migrate test`` runs every migration down again, so
it must never be pointed at a database whose tables someone wants.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baselinr.config import ConnectionSettings, settings_from_dict
from baselinr.errors import ConfigError, UsageError
from baselinr.storage.connection import open_connection

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

SCRATCH_FILE = "scratch.db"
# URL scheme (before any "+driver") -> storage.connection type.
_SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "snowflake": "snowflake",
}


def temporary_directory() -> tempfile.TemporaryDirectory[str]:
    """Where the default scratch SQLite file lives for one run (owner-only, removed afterwards)."""
    return tempfile.TemporaryDirectory(prefix="baselinr-migrate-test-")


def sqlite_scratch(directory: str | Path) -> ConnectionSettings:
    """A fresh SQLite file in ``directory`` (which the caller creates and removes)."""
    path = str(Path(directory) / SCRATCH_FILE)
    return ConnectionSettings(type="sqlite", database=path, filepath=path)


def settings_from_url(url: str) -> ConnectionSettings:
    """``--database``: ``postgresql://user:pw@host:port/db``, ``mysql://…``, ``sqlite:///path``
    or ``snowflake://user:pw@account/db/schema?warehouse=W&role=R``, checked like a config file's."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(
            "--database is not a database URL",
            hint="Write e.g. postgresql://user:password@localhost:5432/scratch or sqlite:///scratch.db.",
        ) from None
    kind = _SCHEMES.get(parsed.drivername.split("+", 1)[0].lower())
    if kind is None:
        raise ConfigError(
            f"--database: unknown scheme '{parsed.drivername}'", hint="Use postgresql://, mysql://, sqlite:/// or snowflake://."
        )
    raw: dict[str, Any] = {"type": kind}
    if kind == "sqlite":
        raw["filepath"] = parsed.database or ""
    elif kind == "snowflake":
        database, _, schema = (parsed.database or "").partition("/")
        raw.update(account=parsed.host, database=database, schema=schema or None)
        for key in ("warehouse", "role"):
            value = parsed.query.get(key)
            if isinstance(value, str):
                raw[key] = value
    else:
        raw.update(host=parsed.host, port=parsed.port, database=parsed.database)
    raw.update(username=parsed.username, password=parsed.password)
    raw = {k: v for k, v in raw.items() if v is not None}
    # The URL is taken literally: no ${VAR} expansion, no BASELINR_* overrides.
    return settings_from_dict({"storage": {"connection": raw}}, env={}, source="--database").storage.connection


def tables_of(engine: Engine, connection: ConnectionSettings) -> list[str]:
    """Every table and view in the connection's schema, as named."""
    from sqlalchemy import inspect

    with open_connection(engine, connection) as conn:
        insp = inspect(conn)
        names = sorted({*insp.get_table_names(), *insp.get_view_names()})
        if conn.in_transaction():
            conn.rollback()
    return names


def refuse_unless_empty(engine: Engine, connection: ConnectionSettings) -> None:
    """``UsageError`` (exit 2), naming what is there, when the database holds any table or view."""
    # The engine's own bookkeeping (``_baselinr_*``) is named after the tables it keeps.
    tables = sorted(tables_of(engine, connection), key=lambda t: (t.startswith("_"), t))
    if not tables:
        return
    ours = [t for t in tables if t.lower().startswith(("baselinr_", "_baselinr_"))]
    listed = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    what = f"Baselinr's tables ({listed})" if ours else f"{len(tables)} table(s) ({listed})"
    raise UsageError(
        f"Refusing to test on {connection.describe()}: it already holds {what}; "
        "migrate test runs every migration up and down and needs an empty scratch database.",
        hint="Give a new, empty database with --database (or leave it out for a temporary SQLite file).",
    )
