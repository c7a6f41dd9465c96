"""``baselinr-schema wait`` and the charts' manifests against the real API server (no operator here).

The test plays the operator's part by writing ``.status`` through the status
subresource with the operator's own status writer, so each verdict of the
waiter (done, failed, timeout, refused) is reached on purpose. The full path
with the operator and Helm is ``test_helm.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from baselinr_operator.status import Reason, StatusDraft
from baselinr_operator.waiter import desired
from tests.helm.helm import OPERATOR_CHART, SCHEMA_CHART, Helm, helm_binary

from .cluster import Cluster
from .waiting import wait_for

pytestmark = pytest.mark.e2e

CRD = OPERATOR_CHART / "crds" / "baselinrschemas.baselinr.io.yaml"
SPEC = {"configSecretRef": {"name": "cfg"}, "backup": {"mode": "Skip"}}


@pytest.fixture(scope="module")
def crd(k8s: Cluster) -> None:
    k8s.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD), check=True)
    k8s.kubectl("wait", "--for=condition=Established", "crd/baselinrschemas.baselinr.io", "--timeout=60s", check=True)
    wait_for(lambda: k8s.kubectl("get", "bschema", "-A").returncode == 0, timeout=30, what="bschema in discovery")


def waiter(kubeconfig: Path, *args: str, spec: dict[str, Any] | None = SPEC) -> subprocess.Popen[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "BASELINR_SCHEMA_SPEC": json.dumps(spec)}
    return subprocess.Popen(
        [sys.executable, "-m", "baselinr_operator.waiter", "wait", *args], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def write_status(k8s: Cluster, namespace: str, name: str, change: str, **kwargs: Any) -> None:
    """What the operator would write: the status after ``StatusDraft.<change>(...)`` for the current generation."""
    obj = k8s.get_json("bschema", name, "-n", namespace)
    draft = StatusDraft(obj.get("status") or {}, int(obj["metadata"]["generation"]), datetime.now(timezone.utc))
    current = kwargs.pop("current", None)
    if current is not None:
        draft.set(currentVersion=current)
    draft.observed()
    getattr(draft, change)(**kwargs)
    k8s.kubectl(
        "patch", "bschema", name, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": draft.data}), check=True,
    )  # fmt: skip


def test_rendered_manifests_validate_on_the_api_server(k8s: Cluster, crd: None, namespace: str, tmp_path: Path) -> None:
    helm = Helm(helm_binary(), tmp_path / "helm-home")
    operator = helm.run(
        "template", "op", str(OPERATOR_CHART), "-n", namespace, "--set", f"operator.watchNamespaces={{{namespace}}}",
        "--set", "metrics.service.enabled=true", check=True,
    ).stdout  # fmt: skip
    schema = helm.run(
        "template", "app", str(SCHEMA_CHART), "-n", namespace, "--set", "targetVersion=2",
        "--set", "configSecretRef.name=cfg", "--set", "backup.volume.persistentVolumeClaim.claimName=bk",
        "--set", "validateInterval=6h", "--set-json", 'jobTemplate={"env":[{"name":"A","value":"b"}]}', check=True,
    ).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(operator + "\n---\n" + schema) if d]
    # The spec the hook would apply must satisfy the CRD's schema and rules too.
    job = next(d for d in docs if d["kind"] == "Job")
    spec = json.loads(job["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"])
    docs.append(desired("app", namespace, 2, spec))
    assert {d["kind"] for d in docs} >= {"Deployment", "ServiceAccount", "ClusterRole", "RoleBinding", "Service", "Job", "Role"}
    proc = k8s.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("(server dry run)") == len(docs), proc.stdout


def test_wait_applies_and_returns_when_ready(k8s: Cluster, crd: None, namespace: str) -> None:
    proc = waiter(k8s.kubeconfig, "db", "-n", namespace, "--target", "3", "--apply", "--timeout", "60")
    wait_for(lambda: k8s.get_json("bschema", "db", "-n", namespace), timeout=30, what="the applied BaselinrSchema")
    obj = k8s.get_json("bschema", "db", "-n", namespace)
    assert obj["spec"]["targetVersion"] == 3 and obj["spec"]["configSecretRef"]["name"] == "cfg"
    write_status(k8s, namespace, "db", "progressing", current=2, phase="Migrating", reason=Reason.MIGRATION_RUNNING,
                 message="Migrating to v3 (Job db-migrate-v3-1)")  # fmt: skip
    time.sleep(1)
    assert proc.poll() is None, "still waiting while the operator migrates"
    write_status(k8s, namespace, "db", "ready", current=3, message="At version 3")
    code, out, err = finish(proc)
    assert code == 0, out + err
    assert "Migrating to v3" in out and f"BaselinrSchema {namespace}/db: at version 3 and Ready" in out


def test_wait_fails_with_the_operators_message(k8s: Cluster, crd: None, namespace: str) -> None:
    proc = waiter(k8s.kubeconfig, "db", "-n", namespace, "--target", "2", "--apply", "--timeout", "60")
    wait_for(lambda: k8s.get_json("bschema", "db", "-n", namespace), timeout=30, what="the applied BaselinrSchema")
    message = 'Migrate Job db-migrate-v2-1 failed: Migration v2 failed: relation "nope" does not exist'
    write_status(k8s, namespace, "db", "failed", current=1, reason=Reason.MIGRATION_FAILED, message=message, retrying=False)
    code, out, err = finish(proc)
    assert code == 4, out + err
    assert err.strip() == f"Error: BaselinrSchema {namespace}/db: {message}"


def test_wait_times_out_with_the_last_state(k8s: Cluster, crd: None, namespace: str) -> None:
    code, out, err = finish(waiter(k8s.kubeconfig, "db", "-n", namespace, "--target", "1", "--apply", "--timeout", "3"))
    assert code == 3, out + err
    assert "timed out after 3s waiting for version 1" in err and "has not acted on generation 1" in err


def test_wait_refuses_a_downgrade_with_the_api_servers_message(k8s: Cluster, crd: None, namespace: str) -> None:
    k8s.apply(json.dumps(desired("db", namespace, 3, SPEC)), namespace)
    write_status(k8s, namespace, "db", "ready", current=3, message="At version 3")
    code, out, err = finish(waiter(k8s.kubeconfig, "db", "-n", namespace, "--target", "2", "--apply", "--timeout", "10"))
    assert code == 2, out + err
    assert "spec.targetVersion is below status.currentVersion" in err
    assert len(err.strip().splitlines()) == 1


def test_wait_without_rights_is_refused(k8s: Cluster, crd: None, namespace: str, tmp_path: Path) -> None:
    """A service account without the hook's Role: one line, exit 2, the token never printed."""
    k8s.kubectl("create", "serviceaccount", "nobody", "-n", namespace, check=True)
    token = k8s.kubectl("create", "token", "nobody", "-n", namespace, check=True).stdout.strip()
    admin = yaml.safe_load(k8s.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    kubeconfig = tmp_path / "nobody.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c", "clusters": [cluster],
        "users": [{"name": "nobody", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": cluster["name"], "user": "nobody", "namespace": namespace}}],
    }))  # fmt: skip
    code, out, err = finish(waiter(kubeconfig, "db", "--target", "1", "--apply", "--timeout", "10"))
    assert code == 2, out + err
    assert f"Cannot apply BaselinrSchema {namespace}/db: 403" in err and "forbidden" in err
    assert token not in out + err and "Traceback" not in err


def readme_section(title: str) -> str:
    text = (OPERATOR_CHART.parents[1] / "README.md").read_text()
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_one_yaml_is_accepted_by_the_api_server(k8s: Cluster, crd: None, namespace: str) -> None:
    """The README's "Run in Kubernetes" BaselinrSchema, as written, passes the CRD's schema and rules."""
    block = readme_section("Run in Kubernetes").split("<<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0]
    manifest = yaml.safe_load(block)
    assert manifest["kind"] == "BaselinrSchema"
    proc = k8s.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=block)
    assert proc.returncode == 0, proc.stderr
    assert "baselinrschema.baselinr.io/baselinr created (server dry run)" in proc.stdout


def test_readme_dependency_is_the_example_apps() -> None:
    """The e2e application declares its dependency as the README tells users to."""
    from tests.helm.helm import EXAMPLE_APP

    block = readme_section("Upgrade an application with its schema").split("<<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0]
    readme_dep = yaml.safe_load(block)["dependencies"][0]
    app_dep = yaml.safe_load((EXAMPLE_APP / "Chart.yaml").read_text())["dependencies"][0]
    assert {k: v for k, v in readme_dep.items() if k != "repository"} == {k: v for k, v in app_dep.items() if k != "repository"}
    assert readme_dep["repository"].endswith("/helm/baselinr-schema") and app_dep["repository"].endswith("/helm/baselinr-schema")
