"""The released profiler's expectation learning on our schema (issue 24, item 13).

0.9.0 writes each learned expectation on a second connection while its own
write transaction is still open. On SQLite the second connection waits out
the 5 s busy timeout for the first one's write lock and fails, so with
learning on a profile run is slower by 5 s per expectation and learns
nothing; on MySQL/MariaDB it learns; on PostgreSQL it does not wait but its
learner's own query fails, so it learns nothing there either. This tier
shows the three, on databases our ``apply`` made, and that ``status`` gives
the workaround on SQLite, which works when followed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import yaml

from tests.support.profiler import World

LEARNING = "Baselinr's profiler (0.9.0) cannot learn expectations on SQLite storage"


def learning(world: World, on: bool) -> None:
    """Learning on (from the first run: ``min_samples: 1``), profiling one table."""
    cfg = yaml.safe_load(world.config.read_text())
    cfg["storage"].update(enable_expectation_learning=on, min_samples=1)
    cfg["profiling"]["tables"] = [t for t in cfg["profiling"]["tables"] if t["table"] == "orders"]
    world.config.write_text(yaml.safe_dump(cfg))


def expectations(world: World) -> int:
    conn = world._dbapi(world.storage_db)
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM baselinr_expectations")
        return int(cur.fetchone()[0])
    finally:
        conn.close()


FAILED_TO_LEARN = re.compile(r"Failed to learn expectations for \S+: \((\S+)\)")


def test_expectation_learning_on_each_dialect(new_world: Callable[[], World]) -> None:
    world = new_world()
    assert world.ours("apply").code == 0
    learning(world, on=True)
    assert world.profiler("profile").code == 0  # the history the second run learns from
    started = time.monotonic()
    r = world.profiler("profile")
    took = time.monotonic() - started
    assert r.code == 0, r.err[-2000:]
    failed = FAILED_TO_LEARN.findall(r.out + r.err)
    status = world.ours("status")
    if world.dialect == "sqlite":
        # Each expectation it learnt waited SQLite's 5 s busy timeout, failed, and was lost.
        assert failed and set(failed) == {"sqlite3.OperationalError"} and "database is locked" in r.err
        assert took > 5 * len(failed), took
        assert expectations(world) == 0
        assert LEARNING in status.out, status.out
        learning(world, on=False)  # the advice, followed: nothing waits for learning any more
        r = world.profiler("profile")
        assert r.code == 0 and not FAILED_TO_LEARN.findall(r.out + r.err), r.err[-2000:]
        assert LEARNING not in world.ours("status").out
    elif world.dialect == "postgres":
        # No wait, but nothing learnt either: the learner's own query is not valid PostgreSQL.
        assert failed and set(failed) == {"psycopg2.errors.InvalidColumnReference"}, r.err[-2000:]
        assert expectations(world) == 0
        assert LEARNING not in status.out
    else:
        # MySQL/MariaDB, the advice's other way out: it learns.
        assert not failed and expectations(world) > 0, r.err[-2000:]
        assert LEARNING not in status.out
