"""A second PostgreSQL major for the tests: the binaries of the ``pgserver`` wheel (PostgreSQL 16).

Debian's ``postgresql`` is the first major (15 on bookworm). ``pgserver`` ships
a relocatable build under ``pgserver/pginstall`` and the shared libraries it
needs in ``pgserver.libs/``, which must be on ``LD_LIBRARY_PATH``. The files
are copied under the session's server directory first, where the server's
system user can read them (site-packages may sit in a home directory it
cannot enter); the server itself is started like Debian's
(``servers.start_postgres``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from tests.support.servers import Server, start_postgres


def start_postgres16(base: Path) -> Server:
    # Found, not imported: importing it sets up its own server helpers (and warns without XDG_RUNTIME_DIR).
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the pgserver wheel is not installed (it is in the test extras; scripts/setup installs them)")
    package = Path(next(iter(spec.submodule_search_locations)))
    libs = package.parent / "pgserver.libs"
    target = base / "pgserver16"
    if not target.exists():
        shutil.copytree(package / "pginstall", target / "pginstall", symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, target / "libs", symlinks=True)
        for path in [target, *target.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o055 if path.is_dir() else path.stat().st_mode | 0o044)
    library_path = os.pathsep.join(p for p in (str(target / "libs"), os.environ.get("LD_LIBRARY_PATH", "")) if p)
    return start_postgres(base, target / "pginstall", {"LD_LIBRARY_PATH": library_path})
