"""Proof that the e2e control plane is a real Kubernetes: API validation,
status subresources, Jobs run to Complete/Failed by the Job controller,
garbage collection, and a kopf operator at work."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from .cluster import Cluster
from .waiting import wait_for

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
CRD = HERE / "manifests" / "widgets-crd.yaml"
CRD_NAME = "widgets.e2e.baselinr.dev"
OPERATOR = HERE / "sample_operator.py"


def widget(name: str, **spec: Any) -> str:
    return json.dumps({"apiVersion": "e2e.baselinr.dev/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})


def job(name: str, command: list[str], **extra: Any) -> dict[str, Any]:
    """A Job with one container running ``command`` (no retries by default)."""
    container: dict[str, Any] = {"name": "main", "image": "python:3.11-slim", "command": command}
    container.update(extra.pop("container", {}))
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    pod_spec.update(extra.pop("pod", {}))
    spec: dict[str, Any] = {"backoffLimit": 0, "template": {"spec": pod_spec}}
    spec.update(extra.pop("spec", {}))
    manifest: dict[str, Any] = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}
    manifest["metadata"].update(extra.pop("metadata", {}))
    assert not extra, extra
    return manifest


def job_condition(k8s: Cluster, namespace: str, name: str, *types: str) -> dict[str, Any] | None:
    """The first of the Job's true conditions of the given types, if any."""
    obj = k8s.get_json("job", name, "-n", namespace)
    for cond in (obj or {}).get("status", {}).get("conditions", []):
        if cond["type"] in types and cond["status"] == "True":
            found: dict[str, Any] = cond
            return found
    return None


def job_pod(k8s: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    pods = k8s.get_json("pods", "-n", namespace, "-l", f"batch.kubernetes.io/job-name={name}")
    items: list[dict[str, Any]] = (pods or {}).get("items", [])
    return items[0] if items else None


def terminated_state(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = pod["status"]["containerStatuses"]
    assert len(statuses) == 1, statuses
    state: dict[str, Any] = statuses[0]["state"]["terminated"]
    return state


@pytest.fixture(scope="module")
def widget_crd(k8s: Cluster) -> Iterator[str]:
    k8s.kubectl("apply", "-f", str(CRD), check=True)
    k8s.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s", check=True)
    # Discovery can lag behind Established by a moment.
    wait_for(lambda: k8s.kubectl("get", "widgets", "-A").returncode == 0, timeout=30, what="widgets in discovery")
    yield CRD_NAME
    k8s.kubectl("delete", "-f", str(CRD), "--wait=false")


def test_server_version(k8s: Cluster) -> None:
    version = json.loads(k8s.kubectl("version", "-o", "json", check=True).stdout)["serverVersion"]
    assert version["major"] == "1"
    assert int(version["minor"].rstrip("+")) >= 34
    if k8s.local:
        assert version["gitVersion"].startswith("v1.3")
        assert version["gitTreeState"] == "clean"


def test_crd_schema_and_cel_rule_reject_invalid_objects(k8s: Cluster, namespace: str, widget_crd: str) -> None:
    ok = k8s.apply(widget("good", size=3, maxSize=5, color="red"), namespace)
    assert ok.returncode == 0, ok.stderr

    too_small = k8s.apply(widget("too-small", size=0), namespace)
    assert too_small.returncode != 0
    assert "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1" in too_small.stderr

    bad_enum = k8s.apply(widget("bad-color", size=2, color="purple"), namespace)
    assert bad_enum.returncode != 0
    assert 'spec.color: Unsupported value: "purple"' in bad_enum.stderr

    cel = k8s.apply(widget("too-big", size=7, maxSize=5), namespace)
    assert cel.returncode != 0
    assert "size must not exceed maxSize" in cel.stderr

    missing = k8s.apply(json.dumps({"apiVersion": "e2e.baselinr.dev/v1", "kind": "Widget", "metadata": {"name": "x"}}), namespace)
    assert missing.returncode != 0
    assert "spec: Required value" in missing.stderr

    names = k8s.kubectl("get", "widgets", "-n", namespace, "-o", "name", check=True).stdout.split()
    assert names == ["widget.e2e.baselinr.dev/good"]


def test_status_subresource_and_printer_columns(k8s: Cluster, namespace: str, widget_crd: str) -> None:
    k8s.apply(widget("w1", size=4), namespace)
    status = {"status": {"phase": "Ready", "message": "all-good", "observedGeneration": 1}}
    patched = k8s.kubectl(
        "patch", "widget", "w1", "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )
    assert patched.returncode == 0, patched.stderr

    # Writes to .status through the main resource are ignored with a status subresource.
    k8s.kubectl("patch", "widget", "w1", "-n", namespace, "--type=merge", "-p", '{"status": {"phase": "Bogus"}}', check=True)

    table = k8s.kubectl("get", "widget", "w1", "-n", namespace, check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "PHASE", "MESSAGE", "AGE"]
    assert table[1].split()[:4] == ["w1", "4", "Ready", "all-good"]

    with k8s.api_client() as api:
        from kubernetes import client

        obj = cast(
            "dict[str, Any]",
            client.CustomObjectsApi(api).get_namespaced_custom_object_status(
                "e2e.baselinr.dev", "v1", namespace, "widgets", "w1"
            ),
        )
    assert obj["status"] == status["status"]
    assert obj["metadata"]["generation"] == 1


def test_jobs_complete_and_fail_with_real_exit_codes(k8s: Cluster, namespace: str) -> None:
    k8s.kubectl("create", "secret", "generic", "creds", "-n", namespace, "--from-literal=token=s3cret", check=True)
    k8s.kubectl("create", "configmap", "settings", "-n", namespace, "--from-literal=greeting=hello", check=True)
    succeed = job(
        "succeed",
        [
            "python",
            "-c",
            "import os, pathlib\n"
            "greeting = pathlib.Path('/etc/settings/greeting').read_text()\n"
            "pathlib.Path('/dev/termination-log').write_text(os.environ['TOKEN'] + ':' + greeting)\n",
        ],
        container={
            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
            "volumeMounts": [{"name": "settings", "mountPath": "/etc/settings", "readOnly": True}],
        },
        pod={"volumes": [{"name": "settings", "configMap": {"name": "settings"}}]},
    )
    fail_by_policy = job(
        "fail-policy",
        ["python", "-c", "import sys; open('/dev/termination-log', 'w').write('boom'); sys.exit(3)"],
        spec={"podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3]}}]}},
    )
    fail_plain = job(
        "fail-plain", ["sh", "-c", "echo going down >&2; exit 7"], container={"terminationMessagePolicy": "FallbackToLogsOnError"}
    )
    for manifest in (succeed, fail_by_policy, fail_plain):
        created = k8s.apply(json.dumps(manifest), namespace)
        assert created.returncode == 0, created.stderr

    complete = wait_for(
        lambda: job_condition(k8s, namespace, "succeed", "Complete", "Failed"), timeout=90, what="Job succeed to finish"
    )
    assert complete["type"] == "Complete", complete
    assert job_condition(k8s, namespace, "succeed", "SuccessCriteriaMet")
    pod = job_pod(k8s, namespace, "succeed")
    assert pod is not None and pod["status"]["phase"] == "Succeeded"
    state = terminated_state(pod)
    assert (state["exitCode"], state["reason"], state["message"]) == (0, "Completed", "s3cret:hello")
    assert state["startedAt"] <= state["finishedAt"]

    failed = wait_for(
        lambda: job_condition(k8s, namespace, "fail-policy", "Complete", "Failed"), timeout=90, what="Job fail-policy"
    )
    assert failed["type"] == "Failed", failed
    assert failed["reason"] == "PodFailurePolicy"
    assert "exit code 3" in failed["message"]
    assert job_condition(k8s, namespace, "fail-policy", "FailureTarget")
    pod = job_pod(k8s, namespace, "fail-policy")
    assert pod is not None and pod["status"]["phase"] == "Failed"
    state = terminated_state(pod)
    assert (state["exitCode"], state["reason"], state["message"]) == (3, "Error", "boom")

    failed = wait_for(
        lambda: job_condition(k8s, namespace, "fail-plain", "Complete", "Failed"), timeout=90, what="Job fail-plain"
    )
    assert (failed["type"], failed["reason"]) == ("Failed", "BackoffLimitExceeded")
    pod = job_pod(k8s, namespace, "fail-plain")
    assert pod is not None
    state = terminated_state(pod)
    assert state["exitCode"] == 7
    assert "going down" in state["message"]
    status = k8s.get_json("job", "fail-plain", "-n", namespace)["status"]
    assert status.get("failed") == 1 and not status.get("succeeded")


def test_deleting_owner_garbage_collects_job_and_stops_its_process(k8s: Cluster, namespace: str, tmp_path: Path) -> None:
    owner = json.loads(k8s.kubectl("create", "configmap", "owner", "-n", namespace, "-o", "json", check=True).stdout)
    marker = tmp_path / "terminated"
    script = (
        "import pathlib, signal, sys, time\n"
        "def bye(*_):\n"
        f"    pathlib.Path({str(marker)!r}).write_text('SIGTERM')\n"
        "    sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "time.sleep(600)\n"
    )
    manifest = job(
        "owned",
        ["python", "-c", script],
        metadata={
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}]
        },
        pod={"terminationGracePeriodSeconds": 5},
    )
    k8s.apply(json.dumps(manifest), namespace).check_returncode()

    def running() -> bool:
        pod = job_pod(k8s, namespace, "owned")
        return bool(pod and pod["status"].get("phase") == "Running")

    wait_for(running, timeout=60, what="pod of Job owned to run")

    k8s.kubectl("delete", "configmap", "owner", "-n", namespace, "--wait=false", check=True)
    wait_for(lambda: k8s.get_json("job", "owned", "-n", namespace) is None, timeout=60, what="Job owned to be collected")
    wait_for(lambda: job_pod(k8s, namespace, "owned") is None, timeout=60, what="pod of Job owned to be deleted")
    if k8s.local:
        # The node agent stopped the process gracefully when the pod went away.
        assert marker.read_text() == "SIGTERM"


# kopf's event loop can end with aiohttp transports still open; they are
# garbage-collected (and reported as unraisable ResourceWarnings) in this test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_kopf_operator_patches_status(k8s: Cluster, namespace: str, widget_crd: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kopf.testing import KopfRunner

    monkeypatch.setenv("KUBECONFIG", str(k8s.kubeconfig))
    args = ["run", "--standalone", "--namespace", namespace, "--verbose", str(OPERATOR)]
    with KopfRunner(args, timeout=60) as runner:
        k8s.apply(widget("managed", size=2), namespace).check_returncode()

        def handled() -> dict[str, Any] | None:
            obj = k8s.get_json("widget", "managed", "-n", namespace)
            status: dict[str, Any] = (obj or {}).get("status", {})
            return status if status.get("phase") == "Handled" else None

        status = wait_for(handled, timeout=60, what="kopf to patch the Widget status")
        assert status["message"] == "size=2"
        row = k8s.kubectl("get", "widget", "managed", "-n", namespace, "--no-headers", check=True).stdout.split()
        assert row[:4] == ["managed", "2", "Handled", "size=2"]
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output
    assert "Handler 'widget_created' succeeded" in runner.output
    gc.collect()  # collect the operator's leftovers here, under this test's warning filter


def test_pod_logs_through_the_api_server(k8s: Cluster, namespace: str) -> None:
    """``kubectl logs`` (the API server's ``pods/log``, proxied to the node agent) shows a running container's output."""
    talk = job("talk", ["python", "-u", "-c", "import time\nfor i in range(3): print('line', i)\ntime.sleep(60)"])
    k8s.apply(json.dumps(talk), namespace)
    pod = wait_for(lambda: job_pod(k8s, namespace, "talk"), timeout=30, what="the talk pod")
    name = pod["metadata"]["name"]

    def logs() -> str | None:
        out = k8s.kubectl("logs", name, "-n", namespace, "--tail=2")
        return out.stdout if out.returncode == 0 and "line 2" in out.stdout else None

    assert wait_for(logs, timeout=30, what="the pod's log") == "line 1\nline 2\n"
    missing = k8s.kubectl("logs", name, "-n", namespace, "-c", "nothere")
    assert missing.returncode != 0
