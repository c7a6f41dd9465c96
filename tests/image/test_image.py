"""The container image, built from the Dockerfile without a Docker daemon.

``scripts/build-image`` builds the unchanged Dockerfile with buildah (on a
stand-in for ``python:3.11-slim-bookworm`` made from Debian's packages, since
no registry is reachable) and smoke-tests it: the entry points, a SQLite
migration as the image's non-root user, no compilers or pip caches. Here the
image's own engine and drivers then migrate the real PostgreSQL and MariaDB
test servers, over the host's loopback network. Deselect with ``-m "not image"``
on a machine without Debian's buildah.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION as LATEST
from tests.conftest import make_database

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.image

BUILDAH_ENV = {**os.environ, "BUILDAH_RUNTIME": os.environ.get("BUILDAH_RUNTIME", "runc")}


def _version() -> str:
    found = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert found
    return found.group(1)


def buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["buildah", *args], capture_output=True, text=True, env=BUILDAH_ENV, timeout=300)
    assert not check or proc.returncode == 0, f"buildah {' '.join(args)}: {proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def build() -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-image")], capture_output=True, text=True, timeout=1500, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + "\n" + proc.stderr[-4000:]
    return proc


@pytest.fixture()
def container(build: subprocess.CompletedProcess[str]) -> Iterator[str]:
    name = buildah("from", f"baselinr:{_version()}").stdout.strip()
    yield name
    buildah("rm", name, check=False)


def test_image_builds_and_passes_its_smoke_test(build: subprocess.CompletedProcess[str]) -> None:
    out = build.stdout
    assert f"OK: baselinr:{_version()}" in out
    assert "image config: user=10001:10001 entrypoint=[baselinr] cmd=[--help] workdir=/tmp" in out
    assert f"✅ Successfully migrated to version {LATEST}" in out
    assert "✅ Schema version is up to date" in out
    assert "$ id -u\n10001\n" in out
    assert "No broken requirements found." in out


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_image_migrates_a_real_server(
    dialect: str, container: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = make_database(dialect, tmp_path, request)
    buildah("copy", "--chown", "10001:10001", container, str(db.config), "/tmp/config.yml")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return buildah("run", "--network", "host", container, "--", "baselinr", *args, "--config", "/tmp/config.yml", check=False)

    applied = run("migrate", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"✅ Successfully migrated to version {LATEST}" in applied.stdout
    status = run("migrate", "status", "--output", "json")
    assert status.returncode == 0, status.stderr
    assert f'"database_version": {LATEST}' in status.stdout
    valid = run("migrate", "validate")
    assert valid.returncode == 0, valid.stdout
    assert "Valid: ✅ Yes" in valid.stdout
    assert str(db.connection["password"]) not in applied.stdout + applied.stderr + status.stdout + valid.stdout
