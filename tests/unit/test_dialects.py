"""Each dialect class owns its per-dialect facts, and one registry names the dialects.

Config parsing, URLs, descriptions, the backup codecs, the linter and the CLI's
``--dialect`` choices all ask the registry in ``baselinr.storage.dialects``; these
tests pin what each dialect answers and that nothing else keeps its own list.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from snowflake.sqlalchemy import OBJECT, TIMESTAMP_NTZ, TIMESTAMP_TZ, VARIANT
from sqlalchemy import types as t

from baselinr.backup.codecs import all_codecs, codec_for, encoding_of
from baselinr.config import ConnectionSettings, settings_from_dict
from baselinr.errors import ConfigError
from baselinr.lint.linter import SQLGLOT_DIALECTS
from baselinr.lint.rules import RULESETS
from baselinr.storage.dialects import (
    ALIASES,
    DIALECT_NAMES,
    MySQLDialect,
    PostgresDialect,
    SnowflakeDialect,
    SQLiteDialect,
    dialect_class,
    dialect_for,
)
from baselinr.storage.families import family_of


def connection(**fields: Any) -> ConnectionSettings:
    return settings_from_dict({"storage": {"connection": fields}}, env={}).storage.connection


def test_the_registry_names_each_class_by_its_own_name() -> None:
    assert DIALECT_NAMES == ("postgres", "mysql", "sqlite", "snowflake")
    for name in DIALECT_NAMES:
        assert dialect_class(name).name == name
        assert dialect_for(name).name == name
    with pytest.raises(KeyError):
        dialect_class("oracle")


@pytest.mark.parametrize(("alias", "name"), [("postgresql", "postgres"), ("mariadb", "mysql"), ("sqlite3", "sqlite")])
def test_a_config_type_alias_is_its_dialect(alias: str, name: str) -> None:
    assert ALIASES[alias] == name
    fields: dict[str, Any] = {"type": alias.upper(), "database": "b"}
    assert connection(**fields).type == name


def test_dialect_for_gives_postgres_its_schema() -> None:
    pg = dialect_for("postgres", "analytics")
    assert isinstance(pg, PostgresDialect) and pg.schema == "analytics"
    assert isinstance(dialect_for("mysql", "ignored"), MySQLDialect)


def test_unknown_type_lists_the_registry() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"storage": {"connection": {"type": "oracle", "database": "x"}}}, env={})
    assert info.value.hint == f"Use one of: {', '.join(DIALECT_NAMES)}."


@pytest.mark.parametrize(
    ("fields", "url", "description"),
    [
        (
            {"type": "postgres", "database": "b"},
            "postgresql+psycopg2://postgres@localhost:5432/b",
            "postgres://postgres@localhost:5432/b",
        ),
        (
            {"type": "postgres", "database": "b", "host": "h", "port": 6000, "username": "u", "password": "pw"},
            "postgresql+psycopg2://u:***@h:6000/b",
            "postgres://u@h:6000/b",
        ),
        ({"type": "mysql", "database": "b"}, "mysql+pymysql://root@localhost:3306/b?charset=utf8mb4", "mysql://root@localhost:3306/b"),
        ({"type": "sqlite", "filepath": "/tmp/x.db"}, "sqlite:////tmp/x.db", "sqlite:/tmp/x.db"),
        (
            {"type": "snowflake", "database": "DB", "account": "acc", "username": "u", "password": "pw", "warehouse": "wh"},
            "snowflake://u:***@acc/DB/PUBLIC?warehouse=wh",
            "snowflake://u@acc/DB",
        ),
    ],
)
def test_url_and_description_come_from_the_dialect(fields: dict[str, Any], url: str, description: str) -> None:
    c = connection(**fields)
    assert str(c.url()) == url
    assert c.describe() == description
    assert "pw" not in c.describe()


def test_default_port_and_user_are_the_dialects() -> None:
    for cls in (PostgresDialect, MySQLDialect):
        c = connection(type=cls.name, database="b")
        assert c.url().port == cls.default_port and c.url().username == cls.default_user
    assert (PostgresDialect.default_port, MySQLDialect.default_port) == (5432, 3306)
    assert SQLiteDialect.default_port is None and SnowflakeDialect.default_port is None


def test_sqlite_takes_its_database_from_the_filepath() -> None:
    assert connection(type="sqlite", filepath="/tmp/y.db").database == "/tmp/y.db"


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("account", "storage.connection.account is required for snowflake"),
        ("warehouse", "storage.connection.warehouse is required for snowflake"),
        ("password", "snowflake needs a password or a private_key_path"),
    ],
)
def test_snowflake_checks_its_own_fields(missing: str, message: str) -> None:
    fields = {"type": "snowflake", "database": "DB", "account": "acc", "username": "u", "password": "pw", "warehouse": "wh"}
    del fields[missing]
    with pytest.raises(ConfigError, match=message):
        connection(**fields)


def test_snowflake_key_passphrase_travels_outside_the_url(tmp_path: Path) -> None:
    key = tmp_path / "key.p8"
    key.write_text("not really a key")
    c = connection(
        type="snowflake", database="DB", account="acc", username="u", warehouse="wh",
        private_key_path=str(key), private_key_passphrase="Zq9-s3cret",
    )  # fmt: skip
    assert c.connect_args() == {"private_key_file_pwd": "Zq9-s3cret"}
    assert "Zq9-s3cret" not in str(c.url()) and c.url().query["authenticator"] == "SNOWFLAKE_JWT"
    assert connection(type="postgres", database="b", password="x").connect_args() == {}


@pytest.mark.parametrize(
    ("live", "family"),
    [(VARIANT(), "json"), (OBJECT(), "json"), (TIMESTAMP_TZ(), "timestamp"), (TIMESTAMP_NTZ(), "timestamp")],
)
def test_snowflake_reads_its_connectors_types(live: Any, family: str) -> None:
    assert family_of(live, SnowflakeDialect()) == (family, None)
    # The other dialects do not guess from a type's name: their drivers never return these.
    assert family_of(live, PostgresDialect()) == (type(live).__name__.lower(), None)


def test_generic_types_need_no_dialect() -> None:
    sf = SnowflakeDialect()
    assert family_of(t.NUMERIC(38, 0), sf) == ("bigint", None)
    assert family_of(t.VARCHAR(36), sf) == ("string", 36)
    assert family_of(t.DateTime(), PostgresDialect()) == ("timestamp", None)


def test_every_dialect_has_a_codec_for_its_name() -> None:
    assert set(all_codecs()) == set(DIALECT_NAMES)
    for name in DIALECT_NAMES:
        codec = codec_for(name)
        assert codec.dialect is dialect_class(name)
        assert encoding_of(name) == codec.encoding


def test_restore_is_atomic_exactly_where_ddl_is_transactional() -> None:
    atomic = {name: codec_for(name).atomic_restore for name in DIALECT_NAMES}
    assert atomic == {name: dialect_class(name).transactional_ddl for name in DIALECT_NAMES}
    assert atomic == {"postgres": True, "mysql": False, "sqlite": True, "snowflake": False}


def test_the_linter_takes_the_registry() -> None:
    assert set(RULESETS) == set(DIALECT_NAMES)
    assert set(SQLGLOT_DIALECTS) == set(DIALECT_NAMES)
    for name in SQLGLOT_DIALECTS.values():
        sqlglot.Dialect.get_or_raise(name)  # raises for a name sqlglot does not know


def test_lint_dialect_choices_are_the_registry(tmp_path: Path) -> None:
    sql = tmp_path / "m.sql"
    sql.write_text("SELECT 1;\n")
    done = subprocess.run(
        [sys.executable, "-m", "baselinr", "migrate", "lint", "--dialect", "oracle", str(sql)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "is not one of " + ", ".join(repr(n) for n in DIALECT_NAMES) + "." in done.stdout + done.stderr
