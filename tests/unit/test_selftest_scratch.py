"""``scratch.settings_from_url``: ``migrate test --database URL`` becomes the same
connection settings a config file would give, and a bad URL is a config error (exit 2)."""

from __future__ import annotations

import pytest

from baselinr.errors import ConfigError
from baselinr.storage.migrations.scratch import settings_from_url, sqlite_scratch


def test_server_urls_keep_an_escaped_password_and_the_port() -> None:
    pg = settings_from_url("postgresql+psycopg2://ci:p%40ss%3Aw%2Frd@db.local:5433/scratch")
    assert (pg.type, pg.host, pg.port, pg.database, pg.username, pg.password) == (
        "postgres",
        "db.local",
        5433,
        "scratch",
        "ci",
        "p@ss:w/rd",
    )
    assert "p@ss" not in pg.describe()
    my = settings_from_url("mariadb://root@127.0.0.1/scratch")
    assert (my.type, my.port, my.password) == ("mysql", None, None)


def test_sqlite_and_snowflake_urls() -> None:
    lite = settings_from_url("sqlite:////tmp/x/scratch.db")
    assert (lite.type, lite.filepath) == ("sqlite", "/tmp/x/scratch.db")
    sf = settings_from_url("snowflake://me:pw@acct-1/SCRATCH/CI?warehouse=WH&role=R")
    where = (sf.type, sf.account, sf.database, sf.schema, sf.warehouse, sf.role)
    assert where == ("snowflake", "acct-1", "SCRATCH", "CI", "WH", "R")
    assert sqlite_scratch("/tmp/d").filepath == "/tmp/d/scratch.db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle://u@h/db", "unknown scheme 'oracle'"),
        ("no url here", "not a database URL"),
        ("postgresql://u@h", "database is required"),
        ("postgresql://u@h:99999/db", "port"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_url(url)
