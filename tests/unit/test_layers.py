"""The layer rules as import contracts (``.importlinter``), run with import-linter, and proof that they can fail.

The rules (DESIGN.md): the engine never imports the operator, kopf or
kubernetes; only ``baselinr.storage`` and ``baselinr.backup`` import the
database drivers; only ``baselinr_operator.kube`` imports ``kubernetes``;
the operator's planner, builders and status writer import neither kopf nor
the API module. The failing cases copy both packages and the contracts into
a temporary directory, inject one forbidden import, and expect the check to
break there and name the contract and the import.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / ".importlinter"
PACKAGES = ("baselinr", "baselinr_operator")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter in ``root`` on the packages found there (not the installed ones)."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run(
        [sys.executable, "-c", code, "--no-cache", str(root / ".importlinter")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "HOME": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(CONTRACTS)
    return parser


def listed(section: str, key: str) -> set[str]:
    return {line.strip() for line in contracts()[section][key].splitlines() if line.strip()}


def top_modules(package: str) -> set[str]:
    base = ROOT / package
    names = {p.stem for p in base.glob("*.py") if p.stem != "__init__"}
    names |= {p.parent.name for p in base.glob("*/__init__.py")}
    return {f"{package}.{n}" for n in names}


def test_the_contracts_hold() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout
    assert done.stdout.count("KEPT") == 4, done.stdout


def test_driver_contract_names_every_engine_module_outside_storage_and_backup() -> None:
    """A new top-level module of the engine cannot slip past the rule unlisted."""
    engine = top_modules("baselinr") - {"baselinr.storage", "baselinr.backup"}
    sources = listed("importlinter:contract:storage-talks-to-databases", "source_modules")
    assert engine <= sources, f"not listed: {sorted(engine - sources)}"
    assert "baselinr_operator" in sources


def test_kubernetes_contract_names_every_operator_module_but_kube() -> None:
    sources = listed("importlinter:contract:one-kubernetes-client", "source_modules")
    assert top_modules("baselinr_operator") - {"baselinr_operator.kube"} == sources


@pytest.fixture()
def copy_tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CONTRACTS, tmp_path / ".importlinter")
    return tmp_path


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        ("baselinr/errors.py", "import baselinr_operator", "The engine never imports the operator, kopf or kubernetes"),
        ("baselinr/storage/model.py", "import kopf", "The engine never imports the operator, kopf or kubernetes"),
        ("baselinr/cli/render/migrate.py", "import sqlalchemy", "Only baselinr.storage and baselinr.backup import"),
        ("baselinr_operator/handlers.py", "import kubernetes", "Only baselinr_operator.kube imports kubernetes"),
        ("baselinr_operator/planner.py", "from baselinr_operator import kube", "The operator's planner, builders and"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(copy_tree: Path, module: str, statement: str, contract: str) -> None:
    assert lint_imports(copy_tree).returncode == 0  # the copy is as clean as the original
    path = copy_tree / module
    path.write_text(path.read_text() + f"\n{statement}  # injected by the test\n")
    done = lint_imports(copy_tree)
    assert done.returncode != 0, done.stdout
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, done.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert importer in broken, done.stdout
