"""Which resource is migrating which database, so that two never migrate the same one at once.

Used by ``handlers`` around the planner. The operator never reads the
config Secret, so a database is known by the keys it can see: the Secret
reference (namespace, name, key) and, once a Job has reported it, the
database the engine connected to (``status.database``, no credentials). A
resource holds its keys while it has a run in flight. The one process that
acts (the only replica, or the leader of several) owns the claims; at start-up,
or when elected, it rebuilds them from the resources' statuses before it
handles anything. The engine's own database
lock stays the last line of defence.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any


def database_keys(namespace: str, spec: Mapping[str, Any], status: Mapping[str, Any] | None) -> frozenset[str]:
    ref = spec.get("configSecretRef") or {}
    keys = {f"secret:{namespace}/{ref.get('name')}/{ref.get('key') or 'config.yml'}"}
    database = (status or {}).get("database")
    if database:
        keys.add(f"database:{database}")
    return frozenset(keys)


class Claims:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._held: dict[str, frozenset[str]] = {}

    def conflict(self, owner: str, keys: Iterable[str]) -> str | None:
        """Another owner holding one of ``keys``, if any."""
        wanted = set(keys)
        with self.lock:
            for other, held in sorted(self._held.items()):
                if other != owner and held & wanted:
                    return other
        return None

    def hold(self, owner: str, keys: Iterable[str]) -> None:
        with self.lock:
            self._held[owner] = frozenset(keys)

    def release(self, owner: str) -> None:
        with self.lock:
            self._held.pop(owner, None)

    def clear(self) -> None:
        with self.lock:
            self._held.clear()

    def holders(self) -> dict[str, frozenset[str]]:
        with self.lock:
            return dict(self._held)
