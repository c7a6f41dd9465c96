"""Every module of ``baselinr`` imports on its own, as the first module of a fresh interpreter.

An import cycle shows only when a module of the cycle is the first one imported
(``import baselinr.backup.snowflake_codec`` failed that way while importing
``baselinr.backup.codecs`` first worked). One subprocess checks every module:
before each import it forgets every ``baselinr`` module already loaded, so each
one starts from nothing as far as our code goes, while third-party packages stay
loaded and the test stays fast.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import baselinr

ROOT = Path(__file__).resolve().parents[2]

_CHECK = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "baselinr" or m.startswith("baselinr.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def modules() -> list[str]:
    """Every module and package under ``baselinr`` but ``__main__`` (importing it runs the CLI)."""
    found = ["baselinr"]
    for info in pkgutil.walk_packages(baselinr.__path__, prefix="baselinr."):
        if not info.name.endswith(".__main__"):
            found.append(info.name)
    return sorted(found)


def test_the_module_list_covers_the_tree() -> None:
    names = modules()
    assert "baselinr.backup.snowflake_codec" in names
    assert "baselinr.storage.dialects" in names
    on_disk = [p for p in (ROOT / "baselinr").rglob("*.py") if p.name != "__main__.py"]
    assert len(names) == len(on_disk)


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHECK, *modules()], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
