"""Load Baselinr's own ``config.yml`` into frozen, typed settings.

Called by the CLI (``--config``) and by library users. Only the storage
connection matters to the migration commands; every other section of a real
Baselinr config is accepted and ignored, so users point the tool at the file
they already have. The parsing here is generic; what a connection of each
type needs, its URL and its description are its dialect's (``dialect_class``).

Order of work, as Baselinr itself does it: ``BASELINR_A__B__C`` environment
overrides first, then ``${VAR}`` / ``${VAR:default}`` expansion in every
string. Fields we know to be strings (passwords, user names, hosts) stay
strings whatever an override looks like. Every problem is a ``ConfigError``
(exit 2) naming the file and the key; a password never appears in a message
or a ``repr``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baselinr.errors import ConfigError
from baselinr.storage.dialects import ALIASES, DIALECT_NAMES, dialect_class

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

_NOT_STORAGE = ("bigquery", "redshift")
# The keys of storage.connection: the released profiler's ConnectionConfig (spec/BASELINR_STORAGE.md)
# and the Snowflake key-pair settings this tool adds. Any other key is ignored by both, so it is a
# warning, not an error: the profiler reads the same file and accepts it.
CONNECTION_KEYS = (
    "type",
    "database",
    "host",
    "port",
    "username",
    "password",
    "schema",
    "schema_",
    "account",
    "warehouse",
    "role",
    "filepath",
    "extra_params",
    "private_key_path",
    "private_key_file",
    "private_key_passphrase",
)
_ENV_PREFIX = "BASELINR_"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")
# Fields of storage.connection whose override values are never coerced.
_INT_FIELDS = {"port"}
_BOOL_FIELDS = {"create_tables"}
# Bounds on what a config file may make us build: a few aliases are fine, an
# alias "billion laughs" that expands to millions of nodes is refused.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_EXPANDED_NODES = 100_000
#: Where an operator Job's config file comes from (e.g. "key 'config.yml' of Secret 'db'"), set by the
#: operator's Job builder so that ``baselinr job`` reports a missing file as that Secret or key missing.
CONFIG_SOURCE_ENV = "BASELINR_CONFIG_SOURCE"


@dataclass(frozen=True)
class ConnectionSettings:
    """Where Baselinr's storage lives (``storage.connection``)."""

    type: str
    database: str
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    account: str | None = None
    warehouse: str | None = None
    role: str | None = None
    filepath: str | None = None
    private_key_path: str | None = None
    private_key_passphrase: str | None = field(default=None, repr=False)
    extra_params: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be printed."""
        return tuple(s for s in (self.password, self.private_key_passphrase) if s)

    def connect_args(self) -> dict[str, Any]:
        """Driver arguments that must not travel in the URL (secrets)."""
        return dialect_class(self.type).secret_connect_args(self)

    def url(self) -> URL:
        """The SQLAlchemy URL; credentials are escaped by ``URL.create``."""
        return dialect_class(self.type).url(self)

    def describe(self) -> str:
        """A one-line, password-free description for messages."""
        return dialect_class(self.type).describe(self)


@dataclass(frozen=True)
class StorageSettings:
    """The ``storage`` section: the connection and table names."""

    connection: ConnectionSettings
    runs_table: str = "baselinr_runs"
    results_table: str = "baselinr_results"
    create_tables: bool = True
    # Read for one piece of advice only: Baselinr's profiler 0.9.0 cannot learn expectations on SQLite.
    enable_expectation_learning: bool = False


@dataclass(frozen=True)
class Settings:
    """Everything the migration commands take from ``config.yml``."""

    storage: StorageSettings
    environment: str | None = None
    source: str = "<inline>"
    # Things in the file that are probably mistakes but do not stop us (an unknown key).
    warnings: tuple[str, ...] = ()


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read, override, expand and validate a Baselinr config file."""
    import yaml

    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{p}: the config file is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB")
        text = data.decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"Config file not found: {p}", hint="Pass --config path/to/config.yml.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read config file {p}: {exc.__class__.__name__}") from None
    try:
        raw = yaml.load(text, Loader=_bounded_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{p}: invalid YAML{where}: {problem}") from None
    except _TooLarge as exc:
        raise ConfigError(f"{p}: {exc}", hint="Write the repeated values out, or use fewer aliases.") from None
    except RecursionError:
        raise ConfigError(f"{p}: the YAML is nested too deeply") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of sections, got {type(raw).__name__}")
    return settings_from_dict(raw, env=os.environ if env is None else env, source=str(p))


class _TooLarge(Exception):
    """The YAML document would expand (through aliases) past our bound."""


def _bounded_loader() -> type[Any]:
    """A ``SafeLoader`` that refuses documents whose aliases expand past
    ``MAX_EXPANDED_NODES`` nodes, or refer to themselves, before building them."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_document(self, node: Any) -> Any:
            _check_expansion(node)
            return super().construct_document(node)

    return Loader


def _check_expansion(root: Any) -> None:
    """Count the nodes of ``root`` as if every alias were written out, in time
    linear in the distinct nodes (each node's expanded size is memoised)."""
    import yaml

    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children: list[Any] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if done:
            active.discard(key)
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_EXPANDED_NODES:
                raise _TooLarge(f"the YAML expands to more than {MAX_EXPANDED_NODES} values through its aliases")
            sizes[key] = total
            continue
        if key in active:
            raise _TooLarge("the YAML refers to itself through an alias")
        active.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in active:
                raise _TooLarge("the YAML refers to itself through an alias")
            stack.append((child, False))


def settings_from_dict(raw: Mapping[str, Any], *, env: Mapping[str, str], source: str = "<inline>") -> Settings:
    """Build settings from an already parsed config mapping."""
    data = _apply_overrides(dict(raw), env)
    data = _expand(data, env)
    storage = data.get("storage")
    if not isinstance(storage, dict):
        raise ConfigError(f"{source}: missing section 'storage'", hint="Add storage.connection with type and database.")
    conn = storage.get("connection")
    if not isinstance(conn, dict):
        raise ConfigError(f"{source}: missing section 'storage.connection'", hint="Add type and database under it.")
    connection = _connection(conn, source, env)
    unknown = [key for key in conn if key not in CONNECTION_KEYS]
    warnings = (_unknown_keys(unknown, source),) if unknown else ()
    runs = storage.get("runs_table") or "baselinr_runs"
    results = storage.get("results_table") or "baselinr_results"
    for key, name in (("runs_table", runs), ("results_table", results)):
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name):
            raise ConfigError(f"{source}: storage.{key} must be a plain table name, got {name!r}")
    environment = data.get("environment")
    return Settings(
        storage=StorageSettings(
            connection=connection,
            runs_table=runs,
            results_table=results,
            create_tables=bool(storage.get("create_tables", True)),
            enable_expectation_learning=_flag(storage.get("enable_expectation_learning", False)),
        ),
        environment=str(environment) if environment is not None else None,
        source=source,
        warnings=warnings,
    )


def _flag(value: Any) -> bool:
    """A YAML boolean, or the text an environment override leaves ("true", "yes", "1")."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "on")
    return bool(value)


def _unknown_keys(keys: list[object], source: str) -> str:
    """One warning for the keys of storage.connection that nothing reads, each with the key it
    most likely meant, and the known ones."""
    import difflib

    named = []
    for key in keys[:10]:
        name = str(key)[:40]
        close = difflib.get_close_matches(name.lower(), CONNECTION_KEYS, n=1, cutoff=0.6)
        named.append(f"storage.connection.{name}" + (f" (did you mean '{close[0]}'?)" if close else ""))
    verb = "is not a connection setting and is" if len(keys) == 1 else "are not connection settings and are"
    return (
        f"{source}: {', '.join(named)} {verb} ignored; "
        f"the known ones are: {', '.join(k for k in CONNECTION_KEYS if k != 'schema_')}"
    )


def _connection(conn: Mapping[str, Any], source: str, env: Mapping[str, str]) -> ConnectionSettings:
    where = f"{source}: storage.connection"
    kind = conn.get("type")
    if kind is None:
        raise ConfigError(f"{where}.type is required", hint=f"Use one of: {', '.join(DIALECT_NAMES)}.")
    kind = ALIASES.get(str(kind).lower(), str(kind).lower())
    if kind in _NOT_STORAGE:
        raise ConfigError(
            f"{where}.type '{kind}' is a source type, not a supported storage database",
            hint=f"Use one of: {', '.join(DIALECT_NAMES)}.",
        )
    if kind not in DIALECT_NAMES:
        raise ConfigError(f"{where}.type '{kind}' is unknown", hint=f"Use one of: {', '.join(DIALECT_NAMES)}.")

    values: dict[str, Any] = {}
    for key in ("database", "host", "username", "password", "account", "warehouse", "role", "filepath"):
        value = conn.get(key)
        if value is not None:
            values[key] = _string(value, f"{where}.{key}", secret=key == "password")
    schema = conn.get("schema", conn.get("schema_"))
    if schema is not None:
        values["schema"] = _string(schema, f"{where}.schema")
    key_path = conn.get("private_key_path") or conn.get("private_key_file")
    if key_path is not None:
        values["private_key_path"] = _string(key_path, f"{where}.private_key_path")
    passphrase = conn.get("private_key_passphrase")
    if passphrase is not None:
        values["private_key_passphrase"] = _string(passphrase, f"{where}.private_key_passphrase", secret=True)
    for key, value in values.items():
        if isinstance(value, str):
            for m in _VAR.finditer(value):
                if m.group(2) is None and m.group(1) not in env:
                    raise ConfigError(
                        f"{where}.{key} uses ${{{m.group(1)}}} but that environment variable is not set",
                        hint=f"Export {m.group(1)} or write ${{{m.group(1)}:default}}.",
                    )
    if conn.get("port") is not None:
        values["port"] = _port(conn["port"], where)
    values["extra_params"] = _extra_params(conn.get("extra_params"), where)

    dialect_class(kind).check_config(values, where)
    return ConnectionSettings(type=kind, **values)


def _port(value: Any, where: str) -> int:
    """A whole number 1..65535: ``true`` or ``5432.9`` is a mistake, not port 1 or 5432."""
    if isinstance(value, bool) or isinstance(value, float) or not isinstance(value, (int, str)):
        shown = repr(value) if isinstance(value, (bool, float)) else f"a {type(value).__name__}"
        raise ConfigError(f"{where}.port must be a number (whole, 1-65535), got {shown}")
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[0-9]{1,5}", text):
            raise ConfigError(f"{where}.port must be a number (whole, 1-65535), got {value[:20]!r}")
        value = int(text)
    port = int(value)
    if not 0 < port < 65536:
        raise ConfigError(f"{where}.port must be between 1 and 65535, got {str(port)[:20]}")
    return port


def _extra_params(extra: Any, where: str) -> dict[str, Any]:
    """``extra_params``: engine options by name, with ``connect_args`` a mapping of driver options."""
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise ConfigError(f"{where}.extra_params must be a mapping, got {type(extra).__name__}")
    for key in extra:
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ConfigError(f"{where}.extra_params has a key that is not an option name: {str(key)[:40]!r}")
    args = extra.get("connect_args")
    if args is not None:
        if not isinstance(args, dict):
            raise ConfigError(f"{where}.extra_params.connect_args must be a mapping, got {type(args).__name__}")
        for key in args:
            if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ConfigError(f"{where}.extra_params.connect_args has a key that is not an option name: {str(key)[:40]!r}")
    return dict(extra)


def _string(value: Any, where: str, *, secret: bool = False) -> str:
    if isinstance(value, (dict, list)):
        raise ConfigError(f"{where} must be a single value, not a {type(value).__name__}")
    if isinstance(value, bool):
        shown = "a boolean"
        if secret:
            raise ConfigError(f"{where} must be a string, got {shown}; quote it in YAML")
        return str(value).lower()
    return str(value)


def _apply_overrides(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Apply ``BASELINR_A__B__C=value`` variables onto the config tree."""
    for name in sorted(env):
        if not name.startswith(_ENV_PREFIX) or "__" not in name:
            continue
        path = [part.lower() for part in name[len(_ENV_PREFIX) :].split("__")]
        if not all(path):
            continue
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = _coerce(path, env[name])
    return data


def _coerce(path: list[str], value: str) -> Any:
    # Inside storage.connection every field but the port is a string: a
    # password "0123" or "true" must stay exactly that.
    leaf = path[-1]
    if path[:2] == ["storage", "connection"]:
        return value if leaf not in _INT_FIELDS else value.strip()
    if leaf in _BOOL_FIELDS or path[0] != "storage":
        low = value.strip().lower()
        if low in ("true", "yes", "1"):
            return True
        if low in ("false", "no", "0"):
            return False
        if path[0] != "storage":
            for cast in (int, float):
                try:
                    return cast(value)
                except ValueError:
                    pass
    return value


def _expand(node: Any, env: Mapping[str, str]) -> Any:
    """Expand ``${VAR}`` and ``${VAR:default}`` in every string of the tree."""
    if isinstance(node, dict):
        return {k: _expand(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, env) for v in node]
    if isinstance(node, str) and "${" in node:

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            return default if default is not None else m.group(0)

        return _VAR.sub(sub, node)
    return node
