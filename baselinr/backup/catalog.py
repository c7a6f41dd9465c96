"""Which tables a backup may hold, and what each looks like: our own schema model, never the manifest.

Used by ``trust`` (check a manifest's names and types), ``writer`` (which
tables and columns to back up) and ``restore`` (which tables to drop with
``--replace``, and the DDL of tables the migrations at the backup's version
do not create). Three sources, all in this code:

- the model of the migration chain at the backup's version (these tables
  must all be in a backup of that version);
- tables a later migration of the chain defines, which Baselinr's profiler
  may have made before that migration ran (``baselinr_lineage`` before v4);
- tables the profiler makes outside the migrations (``PROFILER_TABLES``).

Anything else, even named ``baselinr_*``, is not Baselinr's: it is not
backed up, not restored and not dropped. Except where the model is not
exact (a migration up to that version changed the schema with SQL or Python
and declared no model operations): then a ``baselinr_*`` table the model
does not know may be one that migration made, so it is backed up, and
restored only into a table that running the migrations created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from baselinr.storage.model import NOW, Column, Integer, String, Table, Timestamp, table
from baselinr.storage.version_table import VERSION_TABLE_NAME

if TYPE_CHECKING:
    from baselinr.storage.migrations.chain import Chain

PREFIX = "baselinr_"

# The two tables a config may rename (storage.runs_table, storage.results_table).
RENAMABLE = ("baselinr_runs", "baselinr_results")

# Made by the profiler's LineageSyncTracker, not by any migration (see BASELINR_STORAGE.md).
LINEAGE_SYNC = table(
    "baselinr_lineage_sync",
    Column("provider_name", String(50), nullable=False),
    Column("last_sync_timestamp", Timestamp(), nullable=False),
    Column("last_sync_query_count", Integer()),
    Column("last_sync_edge_count", Integer()),
    Column("updated_at", Timestamp(), default=NOW),
    primary_key=("provider_name",),
)

PROFILER_TABLES: tuple[Table, ...] = (LINEAGE_SYNC,)


@dataclass(frozen=True)
class Catalog:
    """The tables of one schema version (``required``) and every table Baselinr knows (``known``)."""

    version: int
    required: Mapping[str, Table]
    known: Mapping[str, Table]
    exact: bool = True

    def get(self, logical: str) -> Table | None:
        return self.known.get(logical.lower())

    def unmodelled(self, logical: str) -> bool:
        """True for a ``baselinr_*`` table the model does not know but a SQL migration may have made."""
        return not self.exact and logical.lower() not in self.known and logical.lower().startswith(PREFIX)

    def outside_migrations(self, logical: str) -> bool:
        """True for a known table that the migrations up to ``version`` do not create."""
        return logical.lower() in self.known and logical.lower() not in self.required


def catalog(chain: Chain, version: int, dialect: str) -> Catalog:
    """The catalog at ``version`` (0 ≤ version ≤ the chain's code version) on ``dialect``."""
    at, exact = chain.model_at(version, dialect)
    latest, _ = chain.model_at(chain.code_version, dialect)
    required = {name.lower(): t for name, t in at.tables.items()}
    known: dict[str, Table] = {t.name.lower(): t for t in PROFILER_TABLES}
    known.update({name.lower(): t for name, t in latest.tables.items()})
    known.update(required)
    if version < 1:
        # Before v1 nothing is required, not even the version table (a database the profiler made).
        required = {}
    return Catalog(version, required, known, exact)


def is_version_table(logical: str) -> bool:
    return logical.lower() == VERSION_TABLE_NAME
