"""The pre-migration backup in object storage, on a real node: the chart's operator allows the
``objectStore`` kind, the backup Job (a pod of our image) writes to an S3 server (s3s-fs, listening
on the bridge address where pods reach it) with the keys of the config Secret, passed as the AWS
chain's variables and never as arguments; the backup is then listed, verified and restored from
the bucket by the CLI on this machine, every row back. (Without the kind allowed, the spec is refused:
``test_pod_scenarios.py``, whose operator has the chart's defaults.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION as LATEST
from tests.e2e.cluster import Cluster
from tests.support.s3server import S3Server, start_s3
from tests.support.servers import Server

from .chart import SECRET, Installed, assert_no_traceback, connect, install_operator, schema, wait_ready
from .node import Bridge

pytestmark = pytest.mark.node

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bridge_s3(node_network: Bridge, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3(tmp_path_factory.mktemp("s3"), host=node_network.address)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_operator(k8s: Cluster, helm_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """This module's operator: the chart's defaults, with object storage allowed for backups."""
    values = {"allowedVolumeKinds": ["persistentVolumeClaim", "objectStore"]}
    with install_operator(k8s, helm_bin, tmp_path_factory.mktemp("operator"), watch=[], operator_values=values) as made:
        yield made
        assert_no_traceback(made.all_logs())


def secret_with_keys(k8s: Cluster, namespace: str, connection: dict[str, Any], s3: S3Server, tmp_path: Path) -> None:
    """The config Secret: config.yml and the S3 keys beside it."""
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"environment": "test", "storage": {"connection": connection}}))
    made = k8s.kubectl(
        "create", "secret", "generic", SECRET, "-n", namespace, f"--from-file=config.yml={config}",
        f"--from-literal=AWS_ACCESS_KEY_ID={s3.admin.access_key}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={s3.admin.secret_key}", check=True,
    )  # fmt: skip
    config.unlink()
    assert made.returncode == 0


def cli(*args: str, s3: S3Server) -> Any:
    """The CLI on this machine, with the S3 keys only in the AWS chain's variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | s3.env() | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "baselinr", *args, "--output", "json"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_the_backup_job_writes_to_a_bucket_and_the_backup_restores_every_row(
    installed: Installed, bridge_s3: S3Server, pg_server: Server, tmp_path: Path
) -> None:
    k8s, ns = installed.k8s, installed.namespace
    database = pg_server.create_database("node")
    secret_with_keys(k8s, ns, pg_server.connection(database), bridge_s3, tmp_path)
    bucket = bridge_s3.new_bucket()
    store = {"bucket": bucket, "prefix": "team-a/prod", "endpoint": bridge_s3.endpoint, "region": "us-east-1",
             "credentialsSecretRef": {"name": SECRET}}  # fmt: skip
    backup = {"mode": "Required", "objectStore": store}
    k8s.apply(json.dumps(schema("analytics", LATEST - 1, backup=backup)), ns).check_returncode()
    wait_ready(installed, "analytics", LATEST - 1)
    conn = connect(pg_server, database)
    with conn, conn.cursor() as cur:
        for i in range(25):
            cur.execute(
                "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at, status, row_count) "
                "VALUES (%s, %s, now(), 'ok', %s)",
                (f"run-{i}", f"table_{i % 3}", i * 10),
            )
    conn.close()
    k8s.kubectl("patch", "bschema", "analytics", "-n", ns, "--type=merge", "-p",
                json.dumps({"spec": {"targetVersion": LATEST}}), check=True)  # fmt: skip
    status = wait_ready(installed, "analytics", LATEST)
    assert status["lastBackup"]["skipped"] is False and status["lastBackup"]["version"] == LATEST - 1
    location = status["lastBackup"]["location"]
    assert location.startswith(f"s3://{bucket}/team-a/prod/"), location

    # The keys reached the pod through the AWS chain's variables from the Secret, not its arguments.
    job = k8s.get_json("job", f"analytics-backup-v{LATEST}-2", "-n", ns)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert bridge_s3.admin.secret_key not in json.dumps(job) and bridge_s3.admin.access_key not in json.dumps(job)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if e["name"].startswith("AWS_")}
    assert refs["AWS_ACCESS_KEY_ID"] == refs["AWS_SECRET_ACCESS_KEY"] == SECRET

    # Listed complete, verified, and restored into an empty database: every row back.
    config = tmp_path / "restore.yml"
    target = pg_server.create_database("restored")
    config.write_text(yaml.safe_dump({"storage": {"connection": pg_server.connection(target)}}))
    dest = f"s3://{bucket}/team-a/prod"
    listed = cli("backup", "list", "--dest", dest, s3=bridge_s3)
    assert [b["status"] for b in listed["backups"]] == ["complete"], listed
    cli("backup", "verify", location, s3=bridge_s3)
    cli("backup", "restore", location, "--config", str(config), s3=bridge_s3)
    query = "SELECT run_id, dataset_name, row_count FROM baselinr_runs ORDER BY run_id"
    rows = []
    for db in (database, target):
        c = connect(pg_server, db)
        with c.cursor() as cur:
            cur.execute(query)
            rows.append(cur.fetchall())
        c.close()
    assert len(rows[1]) == 25
    # The source has moved on to the latest version; its runs are the same rows.
    assert rows[0] == rows[1]
