"""Column-type families: the one map from a type's spelling to the model's family.

The schema model compares types by family (``integer``, ``string`` …, see
``SqlType``), never by spelling, since each dialect spells and reflects them
its own way. This module is the only place that knows which spellings fall in
which family and which families a model type accepts, for a type as SQL
spells it (``type_family``) and as SQLAlchemy reflects it (``family_of``,
with the dialect's class for its driver's own types). Used by the SQL
follower (``follow``: a migration's DDL into the model), ``drift`` (the live
schema against the model) and ``backup.trust`` (a manifest's column types).
Pure; no database, no sqlglot.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from baselinr.storage.model import SqlType

if TYPE_CHECKING:
    from baselinr.storage.dialects import Dialect

# Every family of the model, and the spellings (upper case, without parameters) that fall in it.
# A type outside this closed list is no model type: the model cannot hold it, a backup refuses it.
FAMILIES: dict[str, tuple[str, ...]] = {
    "integer": ("INTEGER", "INT", "INT2", "INT4", "SMALLINT", "MEDIUMINT", "SERIAL", "SMALLSERIAL", "SERIAL4"),
    "bigint": ("BIGINT", "INT8", "BIGSERIAL", "SERIAL8"),
    "float": ("FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION", "REAL"),
    "decimal": ("NUMERIC", "DECIMAL", "NUMBER", "DEC"),
    "string": ("VARCHAR", "CHARACTER VARYING", "NVARCHAR", "CHAR", "CHARACTER", "NCHAR"),
    "text": ("TEXT", "TINYTEXT", "MEDIUMTEXT", "LONGTEXT", "CLOB", "STRING"),
    "json": ("JSON", "JSONB", "VARIANT", "OBJECT"),
    "timestamp": (
        "TIMESTAMP",
        "DATETIME",
        "TIMESTAMP_NTZ",
        "TIMESTAMP_TZ",
        "TIMESTAMP_LTZ",
        "TIMESTAMPTZ",
        "TIMESTAMPNTZ",
        "TIMESTAMPLTZ",
        "TIMESTAMP WITH TIME ZONE",
        "TIMESTAMP WITHOUT TIME ZONE",
        "DATE",
    ),
    "boolean": ("BOOLEAN", "BOOL"),
}
FAMILY_OF = {name: family for family, names in FAMILIES.items() for name in names}
# Spellings that make a column its table's generated key.
SERIAL = frozenset({"SERIAL", "SMALLSERIAL", "SERIAL4", "BIGSERIAL", "SERIAL8"})

# Widths within the groups a column can be widened in place, for lint's narrowing rules (``lint.coltypes``):
# whole numbers (the model's integer and bigint), reals, and MySQL's text sizes, by spelled base name.
WHOLE_WIDTH = {"TINYINT": 1, "SMALLINT": 2, "MEDIUMINT": 3, "INT": 4, "INTEGER": 4, "BIGINT": 5}
REAL_WIDTH = {"FLOAT": 1, "REAL": 1, "DOUBLE": 2, "DOUBLE PRECISION": 2}
TEXT_WIDTH = {"TINYTEXT": 1, "TEXT": 2, "MEDIUMTEXT": 3, "LONGTEXT": 4}
CHARACTER = frozenset({"CHAR", "NCHAR", "VARCHAR", "NVARCHAR"})

# Families a live (or backed-up) column may have and still match a model column of the key's family.
COMPATIBLE: dict[str, frozenset[str]] = {
    "integer": frozenset({"integer", "bigint"}),
    "bigint": frozenset({"bigint"}),
    "float": frozenset({"float"}),
    # NUMERIC(p, 0) reads back as an integer family (it is how Snowflake spells INTEGER).
    "decimal": frozenset({"decimal", "bigint"}),
    "string": frozenset({"string"}),
    "text": frozenset({"text", "string", "json"}),
    "json": frozenset({"text", "json", "string"}),
    "timestamp": frozenset({"timestamp"}),
    "boolean": frozenset({"boolean", "integer"}),
}

_TYPE = re.compile(
    r"(?P<base>[A-Za-z][A-Za-z0-9_]*(?: [A-Za-z][A-Za-z0-9_]*)*?)"
    r"\s*(?:\(\s*(?P<p>\d{1,10})\s*(?:,\s*(?P<s>\d{1,10})\s*)?\))?"
    r"(?P<rest>(?: [A-Za-z][A-Za-z0-9_]*)*)"
)


def family(base: str, p: int | None = None, s: int | None = None) -> tuple[str, int | None] | None:
    """The family (and string length) of a base spelling with its parameters; ``None`` if no model type."""
    base = " ".join(base.upper().split())
    if base == "TINYINT":
        return ("boolean", None) if p == 1 else ("integer", None)
    found = FAMILY_OF.get(base)
    if found is None:
        return None
    if found == "decimal" and s is not None and s == 0:
        return "bigint", None  # NUMBER(38, 0): how Snowflake spells INTEGER
    if found == "string":
        return ("string", p) if p else ("text", None)
    return found, None


def _parse(spelled: str) -> tuple[str, int | None, int | None] | None:
    """(base, precision or length, scale) of a spelled type; ``None`` if it is not one plain type."""
    m = _TYPE.fullmatch(spelled.strip()) if len(spelled) <= 120 else None
    if m is None:
        return None
    return m["base"], int(m["p"]) if m["p"] is not None else None, int(m["s"]) if m["s"] is not None else None


def type_family(spelled: str) -> tuple[str, int | None] | None:
    """The family (and string length) of a type as a dialect spells it; ``None`` if it is no model type."""
    parsed = _parse(spelled)
    return family(*parsed) if parsed is not None else None


def accepts(model: SqlType, found: str, length: int | None = None) -> bool:
    """True when a column of family ``found`` (and string ``length``) can hold the model's values."""
    if found not in COMPATIBLE.get(model.family, frozenset({model.family})):
        return False
    # A string column narrower than the model's would truncate on the way back in.
    return not (model.family == "string" and found == "string" and length and model.length and length < model.length)


def sql_type(base: str, p: int | None = None, s: int | None = None) -> SqlType | None:
    """The model type of a declared type (``DECIMAL(10, 4)`` → decimal 10, 4); ``None`` if no model type."""
    found = family(base, p, s)
    if found is None:
        return None
    if FAMILY_OF.get(" ".join(base.upper().split())) == "decimal":
        return SqlType("decimal", precision=p, scale=(s or 0) if p is not None else None)
    return SqlType(found[0], length=found[1])


def spelled_type(spelled: str) -> SqlType | None:
    """The model type of a type as a dialect spells it (``VARCHAR(20)`` → string 20); ``None`` if no model type."""
    parsed = _parse(spelled)
    return sql_type(*parsed) if parsed is not None else None


# What may follow a type's parameters and still be one of the closed list's spellings.
_RESTS = frozenset({"", "WITH TIME ZONE", "WITHOUT TIME ZONE", "PRECISION", "UNSIGNED"})


def closed_spelling(spelled: str) -> str | None:
    """The type as a dialect spelled it, rebuilt only from the closed list (base names of
    ``FAMILIES``, digits, ``_RESTS``); ``None`` when it is anything else. Restore adds a column
    the backup kept with this text, so the time zone and precision it had are kept too, and
    nothing of the manifest's text reaches SQL but what this list allows."""
    parsed = _parse(spelled)
    m = _TYPE.fullmatch(spelled.strip()) if parsed is not None else None
    if parsed is None or m is None or family(*parsed) is None:
        return None
    base, p, s = parsed
    rest = " ".join(m["rest"].upper().split())
    if rest not in _RESTS:
        return None
    params = "" if p is None else (f"({p})" if s is None else f"({p}, {s})")
    return " ".join(part for part in (" ".join(base.upper().split()) + params, rest) if part)


def describe(t: SqlType) -> str:
    """The model type as shown in messages: ``string(255)``, ``decimal(10, 4)``, ``timestamp``."""
    if t.length is not None:
        return f"{t.family}({t.length})"
    if t.precision is not None:
        return f"{t.family}({t.precision}, {t.scale})"
    return t.family


def family_of(live_type: Any, dialect: Dialect) -> tuple[str, int | None]:
    """The model family (and string length) of a reflected SQLAlchemy type;
    ``dialect`` reads the types of its driver that are none of SQLAlchemy's."""
    from sqlalchemy import types as t

    if isinstance(live_type, t.Boolean):
        return "boolean", None
    if isinstance(live_type, t.BigInteger):
        return "bigint", None
    if isinstance(live_type, t.Integer):
        return "integer", None
    if isinstance(live_type, t.Float):
        return "float", None
    if isinstance(live_type, t.Numeric):
        # Snowflake reflects INTEGER as NUMBER(38, 0).
        if getattr(live_type, "scale", None) == 0:
            return "bigint", None
        return "decimal", None
    if isinstance(live_type, (t.DateTime, t.Date)):
        return "timestamp", None
    if isinstance(live_type, t.JSON):
        return "json", None
    if isinstance(live_type, t.Text):
        return "text", None
    if isinstance(live_type, t.String):
        length = getattr(live_type, "length", None)
        return ("string", length) if length else ("text", None)
    return dialect.family_of(live_type) or (type(live_type).__name__.lower(), None)
