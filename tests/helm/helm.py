"""The ``helm`` binary for the chart tests: built by ``build-helm.sh`` (cached per machine), run as a subprocess.

Used by ``tests/unit/test_chart*.py`` (lint, template) and ``tests/e2e/test_helm*.py``
(install and upgrade against the test control plane).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "helm"
OPERATOR_CHART = CHARTS / "baselinr-operator"
SCHEMA_CHART = CHARTS / "baselinr-schema"
EXAMPLE_APP = Path(__file__).resolve().parent / "example-app"
KUBE_VERSION = "1.35.4"  # the test control plane's; helm template defaults to an old one without a cluster


def helm_binary() -> str:
    """The path of helm v3.22.0, building it from the Go module proxy on a machine's first run."""
    explicit = os.environ.get("BASELINR_TEST_HELM")
    if explicit:
        return explicit
    proc = subprocess.run(
        ["bash", str(Path(__file__).with_name("build-helm.sh"))], capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building helm failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


@dataclass
class Helm:
    binary: str
    home: Path  # HELM_CACHE_HOME etc. live here, never in the user's home
    kubeconfig: Path | None = None

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def run(self, *args: str, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.binary, *args], capture_output=True, text=True, env=self.env(), timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def template(self, chart: Path, *args: str, namespace: str = "default", release: str = "rel") -> list[dict[str, Any]]:
        """Rendered manifests (CRDs included), as dicts."""
        proc = self.run(
            "template", release, str(chart), "--namespace", namespace, "--kube-version", KUBE_VERSION, "--include-crds", *args
        )
        if proc.returncode != 0:
            raise TemplateError(proc.stderr.strip())
        return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


class TemplateError(Exception):
    """``helm template`` refused the values (the message is helm's)."""


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]
