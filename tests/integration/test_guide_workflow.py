"""The guide's workflow summary, as a developer runs it in a source checkout:
check, ``migrate new``, write the SQL, dry run, apply, status, validate."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from baselinr.config import load_config
from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION as LATEST
from tests.conftest import Database
from tests.support.cli import ROOT, run_process

COST_SQL = '''up_sql="""
        ALTER TABLE baselinr_runs 
        ADD COLUMN cost_dollars DECIMAL(10, 4);
        
        ALTER TABLE baselinr_runs 
        ADD COLUMN bytes_scanned BIGINT;
        
        CREATE INDEX idx_runs_cost 
        ON baselinr_runs (cost_dollars);
    """'''


def test_guide_workflow(database: Database, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "baselinr", checkout / "baselinr", ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": str(checkout), "PYTHONDONTWRITEBYTECODE": "1"}
    cfg = str(database.config)

    def cli(*args: str) -> tuple[int, str, str]:
        r = run_process(*args, env=env, cwd=checkout)
        return r.code, r.out, r.err

    new = LATEST + 1  # the guide's "current version is 1, your new migration is version 2"

    # 1. Check current version
    assert cli("migrate", "apply", "--config", cfg)[0] == 0
    code, out, _ = cli("migrate", "status", "--config", cfg)
    assert code == 0 and f"Current database version: {LATEST}" in out

    # 2-4. Create, register, bump
    code, out, err = cli("migrate", "new", "Add cost tracking fields")
    assert code == 0, err
    versions = checkout / "baselinr/storage/migrations/versions"
    new_file = versions / f"v{new}_add_cost_tracking_fields.py"
    assert new_file.exists()
    registry = (versions / "__init__.py").read_text()
    assert f"from .v{new}_add_cost_tracking_fields import migration as v{new}_migration" in registry
    assert f"    v{new}_migration,\n]" in registry
    schema_version = (checkout / "baselinr/storage/schema_version.py").read_text()
    assert f"CURRENT_SCHEMA_VERSION = {new}" in schema_version
    assert '"description": "Add cost tracking fields"' in schema_version

    # An untouched template is refused rather than recorded as applied.
    code, _, err = cli("migrate", "apply", "--config", cfg, "--target", str(new))
    assert code == 2 and "has nothing to apply" in err

    code, out, _ = cli("migrate", "status", "--config", cfg)
    assert code == 1
    assert out.endswith(
        f"⚠️  Database schema is behind (v{LATEST} < v{new})\nRun: baselinr migrate apply --target {new}\n"
        f"Database: {load_config(cfg).storage.connection.describe()}\n"
    )

    source = new_file.read_text()
    source = re.sub(r'up_sql="""\n.*?"""', lambda _: COST_SQL, source, flags=re.DOTALL)
    new_file.write_text(source)

    # 5. Dry run
    code, out, _ = cli("migrate", "apply", "--config", cfg, "--target", str(new), "--dry-run")
    assert code == 0
    assert out.startswith(
        f"🔍 DRY RUN MODE - No changes will be applied\n\n[DRY RUN] Would apply v{new}: Add cost tracking fields\n"
    )
    assert "ADD COLUMN cost_dollars DECIMAL(10, 4);" in out

    # 8. Apply
    code, out, err = cli("migrate", "apply", "--config", cfg, "--target", str(new))
    assert code == 0, err
    assert out == (
        f"Applying migration v{new}: Add cost tracking fields\n✅ Successfully migrated to version {new}\n"
        f"Database: {load_config(cfg).storage.connection.describe()}\n"
    )

    # 9. Verify
    code, out, _ = cli("migrate", "status", "--config", cfg)
    assert code == 0
    assert f"Current database version: {new}\nCurrent code version: {new}\n\n✅ Schema version is up to date" in out
    code, out, _ = cli("migrate", "validate", "--config", cfg)
    assert code == 0, out
    assert out.startswith(f"Validating schema integrity...\n\nSchema Version: {new}\nValid: ✅ Yes\n")
    # The model follows the SQL migration: its columns and index are the model's.
    assert "not in the schema model" not in out

    # Editing the applied migration afterwards is caught.
    new_file.write_text(new_file.read_text().replace("DECIMAL(10, 4)", "DECIMAL(12, 4)"))
    code, out, _ = cli("migrate", "validate", "--config", cfg)
    assert code == 1 and "was modified after it was applied" in out
    assert not os.path.exists(checkout / "baselinr" / "__pycache__")
