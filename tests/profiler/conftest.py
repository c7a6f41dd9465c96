"""Fixtures of the released-profiler tier: a ``World`` per dialect on the session's real servers."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.profiler import World, add_profiler_user, require_profiler
from tests.support.servers import Server

_count = itertools.count()


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def new_world(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], World]:
    """Makes fresh worlds (source + storage database + config.yml) on one dialect."""
    require_profiler()
    dialect: str = request.param
    server: Server | None = None
    if dialect != "sqlite":
        server = request.getfixturevalue("pg_server" if dialect == "postgres" else "mysql_server")
        add_profiler_user(server)

    def make() -> World:
        return World(dialect, tmp_path / f"world{next(_count)}", server)

    return make
