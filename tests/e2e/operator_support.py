"""Helpers of the operator's end-to-end tests: a database and its Secret, BaselinrSchema manifests,
the operator under ``kopf.testing.KopfRunner``, and reads of status, Jobs and Events.

Used by ``test_operator*.py``. The operator runs in the test process (so its
log is ``runner.output``); its Jobs' commands are run for real by the node
agent against the session's PostgreSQL server.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.packages import sql_migration, write_package
from tests.support.servers import Server

from .cluster import Cluster
from .waiting import WaitTimeout, wait_for

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "deploy" / "crds" / "baselinrschemas.baselinr.io.yaml"
CRD_NAME = "baselinrschemas.baselinr.io"
SECRET = "baselinr-storage"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def install_crd(k8s: Cluster) -> None:
    k8s.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE), check=True)
    k8s.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s", check=True)
    wait_for(lambda: k8s.kubectl("get", "bschema", "-A").returncode == 0, timeout=30, what="bschema in discovery")


@dataclass
class Setup:
    """One test's database (with its config Secret), migrations package and backup directory."""

    k8s: Cluster
    namespace: str
    server: Server
    database: str
    password: str
    package: str
    package_root: Path
    backups: Path
    extra_env: list[dict[str, str]] = field(default_factory=list)

    def close(self) -> None:
        shutil.rmtree(self.package_root, ignore_errors=True)

    def schema(self, name: str, target: int, **spec: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "targetVersion": target,
            "image": "baselinr:test",
            "configSecretRef": {"name": SECRET, "key": "config.yml"},
            "backup": {"mode": "Required", "volume": {"hostPath": {"path": str(self.backups), "type": "DirectoryOrCreate"}}},
            "jobTemplate": {
                "env": [
                    # The test package, then this checkout's code (the Jobs run the code under test).
                    {"name": "PYTHONPATH", "value": f"{self.package_root}:{ROOT}"},
                    {"name": "BASELINR_MIGRATIONS_PACKAGE", "value": self.package},
                    *self.extra_env,
                ]
            },
        }
        body.update(spec)
        return {"apiVersion": "baselinr.io/v1alpha1", "kind": "BaselinrSchema", "metadata": {"name": name}, "spec": body}

    def apply(self, manifest: dict[str, Any]) -> Any:
        return self.k8s.apply(json.dumps(manifest), self.namespace)

    def patch(self, name: str, patch: dict[str, Any]) -> Any:
        return self.k8s.kubectl("patch", "bschema", name, "-n", self.namespace, "--type=merge", "-p", json.dumps(patch))

    def get(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.k8s.get_json("bschema", name, "-n", self.namespace)
        return obj

    def status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = (self.get(name) or {}).get("status") or {}
        return status

    def wait_phase(self, name: str, phase: str, timeout: float = 150, **expect: Any) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            s = self.status(name)
            ok = s.get("phase") == phase and all(s.get(k) == v for k, v in expect.items())
            return s if ok else None

        try:
            return wait_for(probe, timeout=timeout, what=f"{name} to be {phase} with {expect}", interval=0.3)
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}; the status: {json.dumps(self.status(name))}") from None

    def jobs(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.k8s.get_json("jobs", "-n", self.namespace)["items"]
        return items

    def job_names(self) -> list[str]:
        return sorted(j["metadata"]["name"] for j in self.jobs())

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.k8s.get_json("events", "-n", self.namespace)["items"]
        kind = [e for e in items if e["involvedObject"].get("kind") == "BaselinrSchema"]
        return [e for e in kind if name is None or e["involvedObject"]["name"] == name]

    def history(self) -> list[tuple[int, str]]:
        import psycopg2

        conn = psycopg2.connect(
            host=self.server.host, port=self.server.port, user=self.server.user, password=self.password, dbname=self.database
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT version, status FROM baselinr_schema_version ORDER BY version, applied_at")
                return [(int(v), str(s)) for v, s in cur.fetchall()]
        finally:
            conn.close()


def make_setup(k8s: Cluster, namespace: str, server: Server, tmp_path: Path, versions: dict[int, str] | None = None) -> Setup:
    database = server.create_database("op")
    connection = server.connection(database)
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"environment": "test", "storage": {"connection": connection}}))
    k8s.kubectl("create", "secret", "generic", SECRET, "-n", namespace, f"--from-file=config.yml={config}", check=True)
    config.unlink()
    # Not under /tmp: the Jobs mount a scratch volume at /tmp, and the node agent would map that prefix.
    root = Path(tempfile.mkdtemp(prefix="baselinr-e2e-pkgs-", dir="/var/tmp"))
    root.chmod(0o755)
    package = write_package(root, versions or default_versions())
    backups = tmp_path / "backups"
    backups.mkdir()
    backups.chmod(0o777)
    return Setup(k8s, namespace, server, database, str(connection["password"]), package, root, backups)


def default_versions() -> dict[int, str]:
    return {
        2: sql_migration(2, "CREATE TABLE op_two (id INTEGER PRIMARY KEY)", "DROP TABLE op_two", "Add op_two"),
        3: sql_migration(3, "CREATE TABLE op_three (id INTEGER PRIMARY KEY)", "DROP TABLE op_three", "Add op_three"),
    }


def broken_v2() -> dict[int, str]:
    """v2 fails (a table that does not exist); v3 is fine."""
    return {
        2: sql_migration(2, "ALTER TABLE op_missing ADD COLUMN x INTEGER", None, "Broken on purpose"),
        3: sql_migration(3, "CREATE TABLE op_three (id INTEGER PRIMARY KEY)", "DROP TABLE op_three", "Add op_three"),
    }


@contextmanager
def operator(
    k8s: Cluster,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    kubeconfig: Path | None = None,
    liveness_port: int | None = None,
    **env: str,
) -> Iterator[Any]:
    """The operator, watching ``namespace``, for the duration of the block; yields the KopfRunner.

    The tests' backups live in host directories, so ``hostPath`` is an allowed backup volume kind here
    unless ``env`` says otherwise. When the block ends, the operator's log must hold no traceback: an
    exception the operator did not handle is a failure even when the test's own checks passed.
    """
    from kopf.testing import KopfRunner

    monkeypatch.setenv("KUBECONFIG", str(kubeconfig or k8s.kubeconfig))
    settings = {
        "BASELINR_OPERATOR_METRICS_PORT": "0",
        "BASELINR_OPERATOR_RETRY_SECONDS": "2",
        "BASELINR_OPERATOR_TICK_SECONDS": "1",
        "BASELINR_OPERATOR_IMAGE": "baselinr:test",
        "BASELINR_OPERATOR_NAMESPACES": namespace,
        "BASELINR_OPERATOR_ALLOWED_VOLUME_KINDS": "persistentVolumeClaim,hostPath",
        **env,
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    from baselinr_operator import kube

    kube.close()  # a fresh client for this run's kubeconfig
    args = ["run", "--standalone", "--namespace", namespace, "--verbose", "-m", "baselinr_operator.handlers"]
    if liveness_port:
        args.append(f"--liveness=http://127.0.0.1:{liveness_port}/healthz")
    with KopfRunner(args, timeout=90) as runner:
        yield runner
    kube.close()
    assert_no_traceback(runner.output)


def assert_no_traceback(log: str) -> None:
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "Traceback (most recent call last)" in line:
            raise AssertionError("the operator logged a traceback:\n" + "\n".join(lines[max(i - 3, 0) : i + 40]))


def service_account_kubeconfig(k8s: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig for the cluster that authenticates as a service account (a TokenRequest token)."""
    token = k8s.kubectl("create", "token", account, "-n", namespace, "--duration=1h", check=True).stdout.strip()
    config = yaml.safe_load(Path(k8s.kubeconfig).read_text())
    user = config["contexts"][0]["context"]["user"]
    config["users"] = [{"name": user, "user": {"token": token}}]
    path.write_text(yaml.safe_dump(config))
    return path


def metrics_text(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        text: str = response.read().decode()
    return text


def no_password_anywhere(setup: Setup, texts: dict[str, str], password: str | None = None) -> None:
    """The database password (or ``password``, e.g. a wrong one) appears in none of ``texts`` (nor its URL-quoted form)."""
    from urllib.parse import quote, quote_plus

    secret = password or setup.password
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    for where, text in texts.items():
        for form in forms:
            assert form not in text, f"the database password leaked into {where}"


def cluster_texts(setup: Setup, name: str) -> dict[str, str]:
    k8s, ns = setup.k8s, setup.namespace
    return {
        "status": json.dumps(setup.get(name)),
        "events": k8s.kubectl("get", "events", "-n", ns, "-o", "json", check=True).stdout,
        "jobs": k8s.kubectl("get", "jobs", "-n", ns, "-o", "json", check=True).stdout,
        "pods": k8s.kubectl("get", "pods", "-n", ns, "-o", "json", check=True).stdout,
    }
