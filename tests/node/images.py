"""The images the real node runs: the pod sandbox's pause image and our own image.

Both are built here with Debian's buildah, without a registry: the pause image is
``pause.c`` compiled with ``gcc -static`` alone on an empty image; our image is the
repository's Dockerfile built by ``scripts/build-image`` (which also smoke-tests it).
Each is written with ``buildah push … oci-archive:…`` and imported into the node's
containerd with ``ctr -n k8s.io images import``. Used by ``node.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PAUSE_IMAGE = "localhost/baselinr-test/pause:1"
BUILDAH_ENV = {**os.environ, "BUILDAH_RUNTIME": os.environ.get("BUILDAH_RUNTIME", "runc")}


def project_version() -> str:
    found = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    if not found:
        raise RuntimeError("no version in pyproject.toml")
    return found.group(1)


#: Our image as pods name it (containerd's full name of ``baselinr:<version>``).
IMAGE = f"docker.io/library/baselinr:{project_version()}"


def _run(argv: list[str], *, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def buildah(*args: str, timeout: float = 600) -> str:
    return _run(["buildah", *args], timeout=timeout, env=BUILDAH_ENV)


def build_pause(work: Path) -> Path:
    """Compile the pause program, put it on an empty image and write that as an OCI archive."""
    binary = work / "pause"
    _run(["gcc", "-static", "-Os", "-s", "-o", str(binary), str(HERE / "pause.c")])
    container = buildah("from", "scratch").strip()
    try:
        buildah("copy", container, str(binary), "/pause")
        buildah("config", "--entrypoint", '["/pause"]', "--user", "65535:65535", container)
        buildah("commit", "--rm", container, PAUSE_IMAGE)
    except BaseException:
        buildah("rm", container)
        raise
    archive = work / "pause.oci.tar"
    buildah("push", PAUSE_IMAGE, f"oci-archive:{archive}:{PAUSE_IMAGE}")
    return archive


def build_ours(work: Path, log: Path) -> Path:
    """``scripts/build-image`` (the Dockerfile, smoke-tested), then the image as an OCI archive."""
    with log.open("w") as out:
        proc = subprocess.run(
            ["bash", str(ROOT / "scripts" / "build-image")], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, timeout=1500
        )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/build-image failed ({proc.returncode}); its log: {log}")
    archive = work / "baselinr.oci.tar"
    buildah("push", f"baselinr:{project_version()}", f"oci-archive:{archive}:{IMAGE}")
    return archive


def import_archive(ctr: list[str], archive: Path) -> None:
    """Import an OCI archive into containerd's ``k8s.io`` namespace (the one the kubelet uses)."""
    _run([*ctr, "-n", "k8s.io", "images", "import", str(archive)], timeout=600)
    archive.unlink()
