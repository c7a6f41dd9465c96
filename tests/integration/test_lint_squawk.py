"""Peer check: on a shared corpus of PostgreSQL migrations, ``migrate lint``
agrees with squawk (PyPI ``squawk-cli``, its real binary) on every rule both
tools have. squawk runs with ``--assume-in-transaction`` because the engine
runs each PostgreSQL migration in one transaction.

The known differences are asserted too, so they cannot drift silently:
adding a ``BIGSERIAL`` column rewrites the table (its ``nextval`` default is
volatile): squawk's ``adding-field-with-default`` does not flag it, ours
does. A table created earlier in the same migration holds no rows: squawk
still flags dropping it or adding a NOT NULL column to it, ours does not.
PostgreSQL accepts NOT VALID only on CHECK and FOREIGN KEY constraints:
squawk also asks for it on UNIQUE, ours does not.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from baselinr.lint import lint
from baselinr.lint.sources import units_from_files

# squawk rule → ours.
SHARED_RULES = {
    "require-concurrent-index-creation": "pg-index-not-concurrent",
    "adding-not-nullable-field": "pg-set-not-null",
    "constraint-missing-not-valid": "pg-constraint-not-valid",
    "changing-column-type": "pg-type-change-rewrite",
    "adding-field-with-default": "pg-volatile-default",
    "adding-required-field": "not-null-without-default",
    "ban-drop-column": "drop-column",
    "ban-drop-table": "drop-table",
    "disallowed-unique-constraint": "pg-unique-constraint",
    "require-concurrent-index-deletion": "pg-drop-index-not-concurrent",
    "renaming-column": "rename-column",
    "renaming-table": "rename-table",
    "ban-concurrent-index-creation-in-transaction": "pg-concurrently-in-migration",
}

CORPUS = [
    "CREATE INDEX idx_results_metric_value ON baselinr_results (metric_value);",
    "CREATE INDEX CONCURRENTLY idx_results_metric_value ON baselinr_results (metric_value);",
    "CREATE UNIQUE INDEX idx_runs_u ON baselinr_runs (run_id);",
    "CREATE TABLE baselinr_x (id INTEGER);\nCREATE INDEX idx_x ON baselinr_x (id);",
    "ALTER TABLE baselinr_runs ALTER COLUMN status SET NOT NULL;",
    "ALTER TABLE baselinr_events ADD CONSTRAINT fk_run FOREIGN KEY (run_id) REFERENCES baselinr_runs (run_id);",
    "ALTER TABLE baselinr_events ADD CONSTRAINT fk_run FOREIGN KEY (run_id) REFERENCES baselinr_runs (run_id) NOT VALID;",
    "ALTER TABLE baselinr_results ADD CONSTRAINT ck_value CHECK (metric_name <> '');",
    "ALTER TABLE baselinr_results ADD CONSTRAINT ck_value CHECK (metric_name <> '') NOT VALID;",
    "ALTER TABLE baselinr_runs ALTER COLUMN row_count TYPE BIGINT;",
    "ALTER TABLE baselinr_runs ALTER COLUMN status TYPE VARCHAR(40);",
    "ALTER TABLE baselinr_runs ADD COLUMN token UUID DEFAULT gen_random_uuid();",
    "ALTER TABLE baselinr_runs ADD COLUMN noted_at TIMESTAMP DEFAULT now();",
    "ALTER TABLE baselinr_runs ADD COLUMN note VARCHAR(100) DEFAULT 'x';",
    "ALTER TABLE baselinr_runs ADD COLUMN weight FLOAT DEFAULT random();",
    "ALTER TABLE baselinr_runs ADD COLUMN attempts INTEGER NOT NULL;",
    "ALTER TABLE baselinr_runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;",
    "ALTER TABLE baselinr_runs DROP COLUMN environment;",
    "DROP TABLE baselinr_events;",
    "ALTER TABLE baselinr_events VALIDATE CONSTRAINT fk_run;",
    "DROP INDEX idx_runs_status;",
    "DROP INDEX CONCURRENTLY idx_runs_status;",
    "ALTER TABLE baselinr_runs RENAME COLUMN status TO state;",
    "ALTER TABLE baselinr_lineage RENAME TO baselinr_lineage_old;",
    "ALTER TABLE baselinr_runs ADD CONSTRAINT uq_run UNIQUE USING INDEX idx_runs_u;",
    "ALTER TABLE baselinr_lineage ADD COLUMN note TEXT;\nCREATE INDEX CONCURRENTLY idx_lineage_note ON baselinr_lineage (note);",
]
# sql → (our shared rules, squawk's mapped to ours).
KNOWN_DIFFERENCES: dict[str, tuple[set[str], set[str]]] = {
    "ALTER TABLE baselinr_runs ADD COLUMN seq BIGSERIAL;": ({"pg-volatile-default"}, set()),
    "CREATE TABLE baselinr_y (id INTEGER);\nALTER TABLE baselinr_y ADD COLUMN v INTEGER NOT NULL;\nDROP TABLE baselinr_y;": (
        set(),
        {"not-null-without-default", "drop-table"},
    ),
    # PostgreSQL refuses NOT VALID on UNIQUE: squawk asks for it anyway.
    "ALTER TABLE baselinr_runs ADD CONSTRAINT uq_run UNIQUE (run_id);": (
        {"pg-unique-constraint"},
        {"pg-unique-constraint", "pg-constraint-not-valid"},
    ),
}


def _squawk(paths: list[Path]) -> dict[str, set[str]]:
    binary = shutil.which("squawk")
    assert binary, "squawk is in the test extras (squawk-cli)"
    proc = subprocess.run(
        [binary, "--pg-version", "16", "--assume-in-transaction", "--reporter", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    found: dict[str, set[str]] = {p.name: set() for p in paths}
    for item in json.loads(proc.stdout or "[]"):
        rule = item["rule_name"]
        if rule in SHARED_RULES:
            found[Path(item["file"]).name].add(SHARED_RULES[rule])
    return found


def _ours(path: Path) -> set[str]:
    report = lint(units_from_files([str(path)], "postgres"), "postgres")
    return {f.rule for f in report.findings} & set(SHARED_RULES.values())


def test_lint_agrees_with_squawk_on_shared_rules(tmp_path: Path) -> None:
    paths = []
    for i, sql in enumerate([*CORPUS, *KNOWN_DIFFERENCES], 1):
        path = tmp_path / f"{i:02d}_case.sql"
        path.write_text(sql + "\n")
        paths.append(path)
    theirs = _squawk(paths)
    flagged = 0
    for path in paths:
        sql = path.read_text().strip()
        ours = _ours(path)
        if sql in KNOWN_DIFFERENCES:
            assert (ours, theirs[path.name]) == KNOWN_DIFFERENCES[sql], sql
            continue
        assert ours == theirs[path.name], (sql, ours, theirs[path.name])
        flagged += bool(ours)
    # The corpus exercises both tools: most cases are flagged by both, some by neither.
    assert flagged >= 10
    assert flagged < len(CORPUS)
