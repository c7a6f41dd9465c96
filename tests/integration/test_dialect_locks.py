"""The server-kept single-runner locks (PostgreSQL advisory lock, MySQL ``GET_LOCK``) on a real server.

Both are one helper (``Dialect._server_lock``) given three queries; this checks
what each dialect's queries do: a second session waits and gives up naming the
holding session by its server id, and the lock is free again after the block,
also when the block failed. Each lock takes a connection of its own, as the
manager does.
"""

from __future__ import annotations

import pytest

from baselinr.config import load_config
from baselinr.errors import LockTimeout
from baselinr.storage.migrations.manager import MigrationManager
from tests.conftest import Database

pytestmark = pytest.mark.parametrize("database", ["postgres", "mysql"], indirect=True)

HOLDER = {"postgres": "PostgreSQL backend {id} (", "mysql": "MySQL connection {id} ("}


def test_a_second_session_times_out_naming_the_holder(database: Database) -> None:
    mgr = MigrationManager.from_settings(load_config(database.config))
    dialect = mgr.dialect
    with mgr.engine.connect() as first, mgr.engine.connect() as second:
        with dialect.lock(first, 1):
            session = dialect.session_id(first)
            with pytest.raises(LockTimeout) as info, dialect.lock(second, 0.2):
                pytest.fail("the lock was granted twice")
        assert HOLDER[dialect.name].format(id=session) in str(info.value)
    # Released on leaving the block: a new session gets it at once (a lock takes a dedicated connection).
    with mgr.engine.connect() as third, dialect.lock(third, 0):
        pass


def test_the_lock_is_released_when_the_block_fails(database: Database) -> None:
    mgr = MigrationManager.from_settings(load_config(database.config))
    dialect = mgr.dialect
    with mgr.engine.connect() as first, mgr.engine.connect() as second:
        with pytest.raises(RuntimeError, match="step failed"), dialect.lock(first, 1):
            raise RuntimeError("step failed")
        with dialect.lock(second, 0):
            pass
