"""Advice that works when followed (issue 24): each message a user acts on is
true for their database, and doing what it says gets them out.

Every test runs the real CLI (``python -m baselinr``), reads the advice it
prints, and where the advice is a command, runs that command.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from baselinr.config import load_config
from baselinr.errors import redact
from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION as LATEST
from tests.conftest import Database
from tests.support.cli import ROOT, Result, run_process
from tests.support.packages import sql_migration, write_package
from tests.support.servers import Server, free_port

V2 = sql_migration(2, "CREATE TABLE advice_t (id INTEGER)", "DROP TABLE advice_t", description="Add advice_t")


def one_line(r: Result) -> str:
    """The single line an error prints, checked to be single and traceback-free."""
    assert "Traceback" not in r.err, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    return lines[0]


def cli(database: Database, *args: str, pkg: str, root: Path) -> Result:
    return run_process(*args, "--config", str(database.config), "--migrations", pkg, env={"PYTHONPATH": f"{root}:{ROOT}"})


# --- 1. the database is ahead of the code ------------------------------------------------


def test_a_database_ahead_of_the_code_refuses_rollback_and_names_the_code_that_can(database: Database, tmp_path: Path) -> None:
    root = tmp_path / "p"
    newer = write_package(root, {2: V2})  # the release that has v2
    older = write_package(root, {})  # the release before it: v1 only
    assert cli(database, "migrate", "apply", pkg=newer, root=root).code == 0

    status = cli(database, "migrate", "status", pkg=older, root=root)
    assert status.code == 1
    assert "Database schema is ahead (v2 > v1)" in status.out
    assert "has v2" in status.out

    apply = cli(database, "migrate", "apply", pkg=older, root=root)
    line = one_line(apply)
    assert apply.code == 2, line
    assert "neither apply nor roll back v2" in line and "v2 (Add advice_t)" in line and "has v2" in line, line

    # The old advice, followed: it must fail, not print success with the database still ahead.
    rollback = cli(database, "migrate", "rollback", "--target", "1", pkg=older, root=root)
    line = one_line(rollback)
    assert rollback.code == 2, (rollback.out, line)
    assert "Already at version" not in rollback.out
    assert "neither apply nor roll back v2" in line and "has v2" in line, line

    # The new advice, followed: the code that has v2 rolls it back, and the older code is then current.
    assert "baselinr migrate rollback --target 1" in line
    back = cli(database, "migrate", "rollback", "--target", "1", pkg=newer, root=root)
    assert back.code == 0, back.err
    after = cli(database, "migrate", "status", pkg=older, root=root)
    assert after.code == 0 and "Schema version is up to date" in after.out, after.out


# --- 2. a checksum changed in the version table, the file unchanged -------------------------


def sql(database: Database, statement: str) -> list[tuple[object, ...]]:
    """Run one statement on the test's database (as a user's hand edit would) and return its rows."""
    from sqlalchemy import create_engine, text

    settings = load_config(database.config).storage.connection
    engine = create_engine(settings.url(), connect_args=settings.connect_args())
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement))
            return [tuple(r) for r in result.fetchall()] if result.returns_rows else []
    finally:
        engine.dispose()


def test_a_checksum_changed_in_the_version_table_is_realigned_by_repair(database: Database, tmp_path: Path) -> None:
    root = tmp_path / "p"
    pkg = write_package(root, {2: V2})
    assert cli(database, "migrate", "apply", pkg=pkg, root=root).code == 0
    sql(database, "UPDATE baselinr_schema_version SET checksum = 'edited-by-hand' WHERE version = 2")

    validate = cli(database, "migrate", "validate", pkg=pkg, root=root)
    assert validate.code == 1
    assert "run 'baselinr migrate repair' to record the file's checksum" in validate.out, validate.out

    dry = cli(database, "migrate", "repair", "--dry-run", pkg=pkg, root=root)
    assert dry.code == 0, dry.err
    assert "Would realign the recorded checksum of v2 (v2_test.py) with its file: edited-by-ha..." in dry.out, dry.out
    assert sql(database, "SELECT checksum FROM baselinr_schema_version WHERE version = 2") == [("edited-by-hand",)]

    repair = cli(database, "migrate", "repair", pkg=pkg, root=root)
    assert repair.code == 0, repair.err
    assert "Realigned the recorded checksum of v2 (v2_test.py)" in repair.out, repair.out
    [(description,)] = sql(database, "SELECT description FROM baselinr_schema_version WHERE version = 2")
    assert str(description).startswith("Add advice_t [checksum realigned by repair ")
    assert str(description).endswith(": was edited-by-hand]")

    assert cli(database, "migrate", "validate", pkg=pkg, root=root).code == 0
    again = cli(database, "migrate", "repair", pkg=pkg, root=root)
    assert again.code == 0 and "Nothing to repair" in again.out


# --- 3. status reports registry faults --------------------------------------------------------


def checkout(tmp_path: Path) -> tuple[Path, Path, Callable[..., Result]]:
    """A source checkout of ``baselinr`` (its versions directory), a SQLite config, and the
    CLI run in it (``python -m`` puts the working directory first on the path), for the
    commands run on the default migrations package as a developer edits it."""
    root = tmp_path / "checkout"
    shutil.copytree(ROOT / "baselinr", root / "baselinr", ignore=shutil.ignore_patterns("__pycache__"))
    cfg = tmp_path / "sqlite.yml"
    cfg.write_text(f"storage:\n  connection:\n    type: sqlite\n    database: baselinr\n    filepath: {tmp_path / 'b.db'}\n")
    env = {"PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}

    def baselinr(*args: str) -> Result:
        config = [] if args[:2] == ("migrate", "new") else ["--config", str(cfg)]
        return run_process(*args, *config, env=env, cwd=root)

    return root / "baselinr/storage/migrations/versions", cfg, baselinr


def test_status_reports_a_version_registered_twice(tmp_path: Path) -> None:
    versions, _, baselinr = checkout(tmp_path)
    assert baselinr("migrate", "apply").code == 0
    registry = versions / "__init__.py"
    good = registry.read_text()
    registry.write_text(good.replace(f"    v{LATEST}_migration,\n]", f"    v{LATEST}_migration,\n    v{LATEST}_migration,\n]"))
    r = baselinr("migrate", "status")
    line = one_line(r)
    assert r.code == 2 and "Schema version is up to date" not in r.out, r.out
    assert f"Duplicate migrations for versions: {{{LATEST}}}. Each version must appear once." in line, line
    registry.write_text(good)  # the advice, followed
    r = baselinr("migrate", "status")
    assert r.code == 0 and "Schema version is up to date" in r.out, r.err


def test_status_reports_a_registered_version_the_code_version_does_not_count(tmp_path: Path) -> None:
    versions, _, baselinr = checkout(tmp_path)
    assert baselinr("migrate", "apply").code == 0
    new = LATEST + 1
    (versions / f"v{new}_extra.py").write_text(
        "from baselinr.storage.migrations.migration import Migration\n\n"
        f"migration = Migration(version={new}, description='Extra', up_sql='CREATE TABLE extra_t (id INTEGER)')\n"
    )
    registry = versions / "__init__.py"
    registry.write_text(
        registry.read_text().replace("\n# Register", f"from .v{new}_extra import migration as v{new}_migration\n\n# Register")
        .replace(f"    v{LATEST}_migration,\n]", f"    v{LATEST}_migration,\n    v{new}_migration,\n]")
    )
    r = baselinr("migrate", "status")
    line = one_line(r)
    assert r.code == 2 and "Schema version is up to date" not in r.out, r.out
    assert f"CURRENT_SCHEMA_VERSION is {LATEST} but the highest migration is v{new}" in line, line
    assert "Update baselinr/storage/schema_version.py" in line
    schema_version = versions.parent.parent / "schema_version.py"  # the advice, followed
    bumped = schema_version.read_text().replace(f"CURRENT_SCHEMA_VERSION = {LATEST}", f"CURRENT_SCHEMA_VERSION = {new}")
    schema_version.write_text(bumped)
    r = baselinr("migrate", "status")
    assert r.code == 1 and f"Run: baselinr migrate apply --target {new}" in r.out, r.out + r.err


# --- 10. two sentences, a full stop between them ---------------------------------------------


def test_a_message_and_its_advice_are_two_sentences(database: Database, tmp_path: Path) -> None:
    root = tmp_path / "p"
    gap = write_package(root, {3: sql_migration(3, "SELECT 1")}, code_version=3)
    r = cli(database, "migrate", "apply", pkg=gap, root=root)
    assert r.code == 2
    assert one_line(r).endswith("Missing migrations for versions: {2}. All intermediate migrations must exist.")
    r = cli(database, "migrate", "rollback", "--target", "5", pkg=write_package(root, {}), root=root)
    assert r.code == 2
    assert one_line(r).endswith(
        "Missing migrations for versions: {2, 3, 4, 5}. Target v5 is above the latest version this code has (v1); "
        "upgrade Baselinr or lower --target."
    )


# --- 6. a file written but not registered ------------------------------------------------------


def test_a_migration_file_that_is_not_registered_is_named_with_where_to_register_it(tmp_path: Path) -> None:
    versions, _, baselinr = checkout(tmp_path)
    new = LATEST + 1
    (versions / f"v{new}_forgot.py").write_text(
        "from baselinr.storage.migrations.migration import Migration\n\n"
        f"migration = Migration(version={new}, description='Forgot', up_sql='CREATE TABLE forgot_t (id INTEGER)')\n"
    )
    schema_version = versions.parent.parent / "schema_version.py"
    schema_version.write_text(
        schema_version.read_text().replace(f"CURRENT_SCHEMA_VERSION = {LATEST}", f"CURRENT_SCHEMA_VERSION = {new}")
    )
    for command in ("status", "apply"):
        r = baselinr("migrate", command)
        line = one_line(r)
        assert r.code == 2, line
        assert f"v{new}_forgot.py is in {versions} but not registered in ALL_MIGRATIONS" in line, line
        assert f"'from .v{new}_forgot import migration as v{new}_migration'" in line, line
    registry = versions / "__init__.py"  # the advice, followed
    registry.write_text(
        registry.read_text()
        .replace("\n# Register", f"from .v{new}_forgot import migration as v{new}_migration\n\n# Register")
        .replace(f"    v{LATEST}_migration,\n]", f"    v{LATEST}_migration,\n    v{new}_migration,\n]")
    )
    r = baselinr("migrate", "apply")
    assert r.code == 0 and f"Successfully migrated to version {new}" in r.out, r.err


# --- 4. a broken migration file ------------------------------------------------------------------


def test_a_migration_file_that_does_not_import_is_a_usage_error_naming_file_and_line(tmp_path: Path) -> None:
    _, cfg, _ = checkout(tmp_path)
    root = tmp_path / "p"
    pkg = write_package(root, {2: V2, 3: "migration = Migration(version=3,\n    description='Broken', up_sql='SELECT 1'\n"})
    broken = root / pkg / "v3_test.py"
    for command in ("apply", "validate", "status"):
        r = run_process("migrate", command, "--config", str(cfg), "--migrations", pkg, env={"PYTHONPATH": f"{root}:{ROOT}"})
        line = one_line(r)
        assert r.code == 2, line
        assert f"{broken}, line 4: SyntaxError: " in line and "Unexpected error" not in line, line
    named = write_package(root, {2: sql_migration(2, "SELECT 1").replace("'Test v2'", "DESCRIPTION")})
    r = run_process("migrate", "apply", "--config", str(cfg), "--migrations", named, env={"PYTHONPATH": f"{root}:{ROOT}"})
    line = one_line(r)
    assert r.code == 2 and f"{root / named / 'v2_test.py'}, line 4: NameError: name 'DESCRIPTION' is not defined" in line, line
    broken.write_text(broken.read_text() + ")\n")  # the advice, followed
    r = run_process("migrate", "apply", "--config", str(cfg), "--migrations", pkg, env={"PYTHONPATH": f"{root}:{ROOT}"})
    assert r.code == 0 and "Successfully migrated to version 3" in r.out, r.err


# --- 7. SQLite: what is wrong with the file, not servers or migrations ------------------------------


def unprivileged(cfg: Path, *args: str) -> Result:
    """``baselinr migrate ... --config cfg`` as ``unprivileged_cli``."""
    return unprivileged_cli("migrate", *args, "--config", str(cfg))


def unprivileged_cli(*args: str) -> Result:
    """``baselinr ...`` without the capabilities that let root ignore file permissions (the
    tests run as root; a user's shell does not)."""
    proc = subprocess.run(
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", sys.executable, "-m", "baselinr", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    return Result(proc.returncode, proc.stdout, proc.stderr)


def sqlite_config(tmp_path: Path, filepath: Path) -> Path:
    cfg = tmp_path / "sqlite.yml"
    cfg.write_text(f"storage:\n  connection:\n    type: sqlite\n    database: baselinr\n    filepath: {filepath}\n")
    return cfg


def test_sqlite_a_directory_that_does_not_exist_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "no" / "such"
    cfg = sqlite_config(tmp_path, folder / "b.db")
    r = unprivileged(cfg, "apply")
    line = one_line(r)
    assert r.code == 3, line
    assert line.endswith(
        f"SQLite database {folder / 'b.db'}: its directory {folder} does not exist. "
        f"Create it (mkdir -p {folder}), or point storage.connection.filepath at an existing directory."
    ), line
    folder.mkdir(parents=True)  # the advice, followed
    assert unprivileged(cfg, "apply").code == 0


def test_sqlite_a_read_only_file_is_named_with_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    cfg = sqlite_config(tmp_path, path)
    assert unprivileged(cfg, "apply", "--target", "1").code == 0
    path.chmod(0o444)
    r = unprivileged(cfg, "apply")
    line = one_line(r)
    assert r.code == 3, line
    assert f"SQLite database {path} is read-only for this user (mode 0444, owner uid 0)" in line, line
    assert "server" not in line and "Fix the migration" not in line, line
    path.chmod(0o644)  # the advice (chmod u+rw), followed
    r = unprivileged(cfg, "apply")
    assert r.code == 0, r.err


def test_sqlite_a_directory_it_cannot_write_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    cfg = sqlite_config(tmp_path, folder / "b.db")
    assert unprivileged(cfg, "apply", "--target", "1").code == 0
    folder.chmod(0o555)
    try:
        r = unprivileged(cfg, "apply")
        line = one_line(r)
        assert r.code == 3, line
        assert f"this user cannot write to its directory {folder} (mode 0555" in line, line
        assert "server" not in line and "Fix the migration" not in line, line
    finally:
        folder.chmod(0o755)  # the advice (chmod u+w), followed
    assert unprivileged(cfg, "apply").code == 0


# --- 8. a typo in storage.connection; the database each command acts on ----------------------------


def test_a_typo_in_storage_connection_is_named_and_the_database_is_shown(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    cfg = tmp_path / "typo.yml"
    cfg.write_text("storage:\n  connection:\n    type: sqlite\n    database: baselinr\n    file_path: ./mine.db\n")
    r = run_process("migrate", "apply", "--config", str(cfg), cwd=work)
    assert r.code == 0, r.err
    [warning] = r.err.strip().splitlines()
    assert f"{cfg}: storage.connection.file_path (did you mean 'filepath'?) is not a connection setting and is ignored" in warning
    assert "the known ones are: type, database, host, port, username, password, schema, account" in warning
    assert r.out.splitlines()[-1] == f"Database: sqlite:{work / 'baselinr'}", r.out
    r = run_process("migrate", "status", "--config", str(cfg), cwd=work)
    assert f"Database: sqlite:{work / 'baselinr'}\n" in r.out and "file_path" in r.err
    cfg.write_text(cfg.read_text().replace("file_path:", "filepath:"))  # the advice, followed
    r = run_process("migrate", "apply", "--config", str(cfg), cwd=work)
    assert r.code == 0 and r.err == "", r.err
    assert r.out.splitlines()[-1] == f"Database: sqlite:{work / 'mine.db'}", r.out


def test_an_unknown_key_on_a_server_database_is_a_warning_and_status_names_the_server(database: Database) -> None:
    database.write_config()
    data = database.config.read_text().replace("  connection:\n", "  connection:\n    prot: 1234\n")
    database.config.write_text(data)
    r = run_process("migrate", "status", "--config", str(database.config))
    assert r.code == 1, r.err  # not initialized
    [warning] = r.err.strip().splitlines()
    assert "storage.connection.prot (did you mean 'port'?) is not a connection setting and is ignored" in warning
    settings = load_config(database.config).storage.connection
    assert f"Database: {settings.describe()}\n" in r.out
    if database.dialect != "sqlite":
        assert f"@127.0.0.1:{settings.port}/{settings.database}" in settings.describe()
    password = settings.password
    assert not password or password not in r.out + r.err
    # An error stays one line, with the warning as its note (the typo may be why it failed).
    database.config.write_text(data.replace(f"port: {settings.port}", f"port: {free_port()}"))
    r = run_process("migrate", "status", "--config", str(database.config))
    if database.dialect != "sqlite":
        line = one_line(r)
        assert r.code == 3 and "Cannot connect to" in line and "Note: " in line and "(did you mean 'port'?)" in line, line


# --- 9. redaction where the password is, not every substring ----------------------------------------


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_short_password_is_redacted_where_it_is_not_inside_words(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server: Server = request.getfixturevalue("pg_server" if kind == "postgres" else "mysql_server")
    scheme = "postgres" if kind == "postgres" else "mysql"
    cases = [
        ("p", "127.0.0.1", server.port, f"{scheme}://{server.user}@127.0.0.1:{server.port}/x"),  # refused credentials
        ("host", "localhost", free_port(), f"{scheme}://{server.user}@localhost:"),  # nobody listening
    ]
    for password, host, port, shown in cases:
        cfg = tmp_path / f"{kind}-{password}.yml"
        cfg.write_text(
            f"storage:\n  connection:\n    type: {kind}\n    host: {host}\n    port: {port}\n"
            f"    database: x\n    username: {server.user}\n    password: '{password}'\n"
        )
        r = run_process("migrate", "status", "--config", str(cfg))
        line = one_line(r)
        assert r.code == 3, line
        assert shown in line and "***" not in line, line


def test_a_password_is_redacted_in_a_url_a_dsn_and_a_parameter() -> None:
    for secret, text, expected in [
        ("p", "postgresql://u:p@host:5432/db", "postgresql://u:***@host:5432/db"),
        ("p@ss w", "postgresql://u:p%40ss%20w@host/db and p%40ss+w", "postgresql://u:***@host/db and ***"),
        ("host", "host=localhost password=host port=1", "host=localhost password=*** port=1"),
        ("p", "connect(password='p', host='pg')", "connect(password='***', host='pg')"),
    ]:
        assert redact(text, [secret]) == expected


# --- 11. a backup directory this user cannot read --------------------------------------------------


def test_restore_from_a_backup_directory_this_user_cannot_read(tmp_path: Path) -> None:
    cfg = sqlite_config(tmp_path, tmp_path / "b.db")
    dest = tmp_path / "backups"
    assert unprivileged(cfg, "apply").code == 0
    created = run_process("backup", "create", "--config", str(cfg), "--dest", str(dest))
    assert created.code == 0, created.err
    [backup] = [d for d in dest.iterdir() if d.is_dir()]
    for unreadable, shown in ((dest, dest), (backup, backup / "manifest.json")):
        unreadable.chmod(0o000)
        try:
            for args in (["restore", "--config", str(cfg)], ["verify"]):
                r = unprivileged_cli("backup", args[0], *args[1:], "--dest", str(dest), "latest")
                line = one_line(r)
                assert r.code == 2, line
                assert f"Permission denied: this user cannot open {shown}" in line and "Unexpected error" not in line, line
                assert f"chmod u+rwX {shown}" in line, line
        finally:
            unreadable.chmod(0o700)  # the advice, followed (the directory above the file, here)
    r = unprivileged_cli("backup", "restore", "--config", str(cfg), "--dest", str(dest), "latest", "--replace")
    assert r.code == 0, r.err


# --- 12. every migration example of our guide runs as written; the dry run's exit code --------------

GUIDE = ROOT / "docs" / "MIGRATION_GUIDE.md"
# Each whole migration module of the guide (by its description), in the chain it runs in: the
# guide's own order, or (for the backfill) after the DDL migration its text asks for.
BACKFILL_DDL = sql_migration(2, "ALTER TABLE baselinr_results ADD COLUMN metric_value_num DECIMAL(20, 6)")
CHAINS = {
    "Add cost tracking fields to runs table": [],
    "Add new column": ["Populate new field"],
    "Add and populate field": [],
    "Backfill metric_value_num": None,  # v3, after BACKFILL_DDL
}


def guide_migrations() -> dict[str, str]:
    """Every ``python`` block of the guide that is a whole migration module, by description."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    found = {}
    for block in blocks:
        if "migration = Migration(" in block:
            m = re.search(r'description="([^"]+)"', block)
            assert m is not None, block
            found[m.group(1)] = block
    return found


def guide_package(root: Path, modules: list[str], *, ddl: bool = False) -> str:
    """The guide's layout: ``<pkg>/manager.py`` and ``<pkg>/versions/``, with Baselinr's v1 and
    each of ``modules`` written to its own file exactly as the guide shows it."""
    name = f"guide_{uuid.uuid4().hex[:8]}"
    versions = root / name / "versions"
    versions.mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    (root / name / "manager.py").write_text("from baselinr.storage.migrations.manager import Migration  # noqa: F401\n")
    imports = ["from baselinr.storage.migrations.versions.v1_initial import migration as v1_migration"]
    names = ["v1_migration"]
    if ddl:
        (versions / "v2_ddl.py").write_text(
            "from baselinr.storage.migrations.manager import Migration\n\n" + BACKFILL_DDL
        )
        imports.append("from .v2_ddl import migration as v2_migration")
        names.append("v2_migration")
    for source in modules:
        version = int(re.search(r"version=([0-9]+)", source).group(1))  # type: ignore[union-attr]
        (versions / f"v{version}_example.py").write_text(source)
        imports.append(f"from .v{version}_example import migration as v{version}_migration")
        names.append(f"v{version}_migration")
    (versions / "__init__.py").write_text("\n".join(imports) + f"\n\nALL_MIGRATIONS = [{', '.join(names)}]\n")
    return f"{name}.versions"


def fresh_config(database: Database, tmp_path: Path, name: str) -> Path:
    """A config for another empty database on the same server (or another SQLite file)."""
    other = Database(database.dialect, tmp_path / f"{name}.yml", dict(database.connection), database.server)
    if database.server is not None:
        other.connection["database"] = database.server.create_database()
    else:
        other.connection["filepath"] = str(tmp_path / f"{name}.db")
    return other.write_config()


def test_every_migration_example_of_the_guide_runs_as_written(database: Database, tmp_path: Path) -> None:
    examples = guide_migrations()
    chained = set(CHAINS) | {t for then in CHAINS.values() for t in then or []}
    assert set(examples) == chained, "a new migration example in the guide needs its chain here"
    root = tmp_path / "guide"
    env = {"PYTHONPATH": f"{root}:{ROOT}"}
    for i, (first, then) in enumerate(CHAINS.items()):
        if then is None:
            pkg, top = guide_package(root, [examples[first]], ddl=True), 3
        else:
            pkg, top = guide_package(root, [examples[first], *(examples[t] for t in then)]), 2 + len(then)
        cfg = fresh_config(database, tmp_path, f"guide{i}")
        r = run_process("migrate", "apply", "--config", str(cfg), "--migrations", pkg, "--target", "1", env=env)
        assert r.code == 0, r.err
        seeded = Database(database.dialect, cfg, {}, database.server)
        sql(seeded, "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at) VALUES ('r1', 'orders', '2024-01-01')")
        r = run_process("migrate", "apply", "--config", str(cfg), "--migrations", pkg, env=env)
        assert r.code == 0, (first, r.out, r.err)
        assert f"Successfully migrated to version {top}" in r.out
        if "new_field" in examples[first] and then is not None:
            assert sql(seeded, "SELECT new_field FROM baselinr_runs") == [("orders_v1",)]


def test_a_dry_run_that_shows_a_lint_error_exits_0_and_says_which_command_fails(database: Database, tmp_path: Path) -> None:
    root = tmp_path / "p"
    pkg = write_package(root, {2: sql_migration(2, "DROP TABLE baselinr_events")})
    assert cli(database, "migrate", "apply", "--target", "1", pkg=pkg, root=root).code == 0
    dry = cli(database, "migrate", "apply", "--dry-run", pkg=pkg, root=root)
    assert dry.code == 0, dry.err
    assert "[drop-table] (error)" in dry.out
    assert "This dry run exits 0; 'baselinr migrate lint' (same --config) exits 1 on these errors" in dry.out, dry.out
    lint = cli(database, "migrate", "lint", pkg=pkg, root=root)  # the advice, followed
    assert lint.code == 1 and "[drop-table] (error)" in lint.out, lint.out + lint.err


# --- 5. migrate new: a registry with a trailing comment; an installed copy ---------------------------


def test_migrate_new_registers_after_an_entry_with_a_trailing_comment(tmp_path: Path) -> None:
    versions, _, baselinr = checkout(tmp_path)
    registry = versions / "__init__.py"
    registry.write_text(registry.read_text().replace(f"    v{LATEST}_migration,\n]", f"    v{LATEST}_migration  # hybrid,\n]"))
    r = baselinr("migrate", "new", "Add cost tracking fields")
    assert r.code == 0, r.err
    assert f"    v{LATEST}_migration,  # hybrid,\n    v{LATEST + 1}_migration,\n]" in registry.read_text()
    r = baselinr("migrate", "status")
    assert f"Current code version: {LATEST + 1}" in r.out, r.out + r.err


def test_migrate_new_refuses_an_installed_copy_and_writes_nothing(tmp_path: Path) -> None:
    site = tmp_path / "venv" / "lib" / "python3" / "site-packages"
    shutil.copytree(ROOT / "baselinr", site / "baselinr", ignore=shutil.ignore_patterns("__pycache__"))
    before = sorted(p.name for p in (site / "baselinr/storage/migrations/versions").iterdir())
    work = tmp_path / "work"
    work.mkdir()
    r = run_process("migrate", "new", "Add cost tracking fields", env={"PYTHONPATH": str(site)}, cwd=work)
    line = one_line(r)
    assert r.code == 2, line
    assert f"is an installed copy ({site / 'baselinr/storage/migrations/versions'}), not a source checkout" in line, line
    assert sorted(p.name for p in (site / "baselinr/storage/migrations/versions").iterdir()) == before
    # The advice, followed: in a checkout it works.
    versions, _, baselinr = checkout(tmp_path)
    r = baselinr("migrate", "new", "Add cost tracking fields")
    assert r.code == 0 and (versions / f"v{LATEST + 1}_add_cost_tracking_fields.py").exists(), r.err


# --- 13. the released profiler's expectation learning on SQLite --------------------------------------

LEARNING = "Baselinr's profiler (0.9.0) cannot learn expectations on SQLite storage"


def test_status_and_repair_on_sqlite_say_that_expectation_learning_must_stay_off(database: Database) -> None:
    database.write_config(enable_expectation_learning=True)
    assert run_process("migrate", "apply", "--config", str(database.config)).code == 0
    for command in ("status", "repair"):
        r = run_process("migrate", command, "--config", str(database.config))
        assert r.code == 0, r.err
        if database.dialect == "sqlite":
            assert LEARNING in r.out and "Set storage.enable_expectation_learning: false" in r.out, r.out
        else:
            assert LEARNING not in r.out, r.out  # PostgreSQL and MariaDB learn as they should
    database.write_config(enable_expectation_learning=False)  # the advice, followed
    for command in ("status", "repair"):
        r = run_process("migrate", command, "--config", str(database.config))
        assert r.code == 0 and LEARNING not in r.out, r.out
