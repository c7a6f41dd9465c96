"""``migrate status`` and an ``apply`` with nothing to do import only what they need.

Each runs as a fresh ``python -m baselinr`` process against a real PostgreSQL
database at the latest version, with ``-X importtime`` (``PYTHONPROFILEIMPORTTIME``)
listing every module it imported. Neither may import another command's module
(the CLI's lazy registry names them: ``backup``, ``job``, ``migrate lint``,
``migrate test`` and what they load), nor SQLAlchemy, nor the modules of the
verbs they do not run: the runner and what it reports step by step (a plan is
run only when there is work), and the results of ``validate`` / ``repair`` /
``baseline``. ``status`` with the default versions package imports no migration
(the code version is a constant); on a chain of SQL migrations (the bench's
shape) neither builds the model operations. The same commands on a database
that is behind still work and do import what they then need, so the check can
tell the two apart. Without ``OTEL_*`` in the environment, no command imports
OpenTelemetry (tracing is off and costs nothing).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from baselinr.cli.app import cli
from baselinr.cli.lazy import LazyGroup
from baselinr.storage.migrations.chain import DEFAULT_PACKAGE
from tests.conftest import Database, make_database
from tests.support.cli import ROOT, run_process

# Packages only other commands use (lint's parser, the backup engine).
OTHER_PACKAGES = ("baselinr.lint", "baselinr.backup", "sqlglot", "sqlalchemy")
# What the two commands never need on an up-to-date database.
NOT_NEEDED = (
    "baselinr.storage.migrations.runner",
    "baselinr.storage.migrations.run_results",
    "baselinr.storage.migrations.upkeep_results",
    # Tracing is off without OTEL_* (baselinr.tracing): OpenTelemetry is not even imported.
    "opentelemetry",
)


def imported(stderr: str) -> set[str]:
    """Every module ``-X importtime`` says the process imported (full dotted names)."""
    return {m.group(1) for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", stderr, re.M)}


def other_command_modules() -> set[str]:
    """The modules of the commands kept in their own modules, from the CLI's lazy registry."""
    found = set()
    groups = [cli]
    while groups:
        group = groups.pop()
        if isinstance(group, LazyGroup):
            found |= {target.partition(":")[0] for target in group.lazy.values()}
        groups += [c for c in group.commands.values() if isinstance(c, LazyGroup)]
    return found


def run(db: Database, *args: str, path: Path | None = None) -> tuple[int, str, set[str]]:
    env = {"PYTHONPROFILEIMPORTTIME": "1", "PYTHONWARNINGS": "ignore"}
    if path is not None:
        env["PYTHONPATH"] = f"{ROOT}:{path}"
    r = run_process("migrate", *args, "--config", str(db.config), env=env)
    return r.code, r.out, imported(r.err)


def sql_chain(root: Path, n: int) -> str:
    """A versions package of ``n`` plain SQL migrations (no model operations, no SQLAlchemy); its name."""
    name = f"sql_chain_{uuid.uuid4().hex[:8]}"
    pkg = root / name
    pkg.mkdir(parents=True)
    for v in range(1, n + 1):
        (pkg / f"v{v}.py").write_text(
            "from baselinr.storage.migrations.manager import Migration\n\n"
            f"migration = Migration(version={v}, description='t{v}', up_sql='CREATE TABLE t{v} (id INTEGER)')\n"
        )
    imports = "".join(f"from .v{v} import migration as m{v}\n" for v in range(1, n + 1))
    listed = ", ".join(f"m{v}" for v in range(1, n + 1))
    (pkg / "__init__.py").write_text(f"{imports}\nALL_MIGRATIONS = [{listed}]\nCURRENT_SCHEMA_VERSION = {n}\n")
    return name


def loaded_by(modules: set[str], prefixes: tuple[str, ...] | set[str]) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(f"{p}.") for p in prefixes)}


@pytest.fixture()
def db(tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    return make_database("postgres", tmp_path, request)


def test_the_registry_names_the_other_commands() -> None:
    assert other_command_modules() >= {"baselinr.cli.backup", "baselinr.cli.job", "baselinr.cli.lint", "baselinr.cli.selftest"}


def test_status_and_a_no_op_apply_import_only_what_they_need(db: Database) -> None:
    code, out, _ = run(db, "apply")
    assert code == 0, out
    forbidden = (*other_command_modules(), "baselinr.cli.backup_clone", *OTHER_PACKAGES, *NOT_NEEDED)
    for args in (("status",), ("status", "--output", "json"), ("apply",)):
        code, out, modules = run(db, *args)
        assert code == 0, out
        assert "psycopg2" in modules and "baselinr.cli.app" in modules  # the listing is real
        assert loaded_by(modules, forbidden) == set(), args
    _, out, modules = run(db, "status")
    assert "Schema version is up to date" in out
    assert loaded_by(modules, (DEFAULT_PACKAGE, "baselinr.storage.operations")) == set()
    _, _, modules = run(db, "apply")
    assert f"{DEFAULT_PACKAGE}.v1_initial" in modules  # a no-op apply checks the chain
    assert "baselinr.storage.operations" in modules  # whose migrations are model operations


def test_on_a_sql_chain_neither_builds_the_model_operations(db: Database, tmp_path: Path) -> None:
    package = sql_chain(tmp_path / "pkgs", 5)
    code, out, modules = run(db, "apply", "--migrations", package, path=tmp_path / "pkgs")
    assert code == 0 and "Successfully migrated to version 5" in out, out
    assert "baselinr.storage.migrations.runner" in modules
    forbidden = (*other_command_modules(), *OTHER_PACKAGES, *NOT_NEEDED, "baselinr.storage.operations", DEFAULT_PACKAGE)
    for args in (("status",), ("apply",)):
        code, out, modules = run(db, *args, "--migrations", package, path=tmp_path / "pkgs")
        assert code == 0, out
        assert f"{package}.v5" in modules  # the chain was loaded: its code version is its own
        assert loaded_by(modules, forbidden) == set(), args


def test_behind_the_same_commands_load_what_they_then_need(db: Database) -> None:
    code, out, _ = run(db, "apply", "--target", "3")
    assert code == 0, out
    code, out, modules = run(db, "status")
    assert code == 1 and "behind" in out
    assert f"{DEFAULT_PACKAGE}.v1_initial" in modules  # looks for tables of unrecorded versions
    code, out, modules = run(db, "apply")
    assert code == 0, out
    assert {"baselinr.storage.migrations.runner", "baselinr.storage.migrations.run_results"} <= modules
    assert loaded_by(modules, (*other_command_modules(), "sqlalchemy")) == set()
