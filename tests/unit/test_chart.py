"""The Helm charts in ``helm/``: lint, render, and the rules the rendered manifests must keep.

``helm`` is v3.22.0 built from its Go module by ``tests/helm/build-helm.sh``
(cached per machine). The rendered manifests are also validated by the real
API server (server-side dry run) in ``tests/e2e/test_helm.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.helm import OPERATOR_CHART, ROOT, SCHEMA_CHART, Helm, TemplateError, by_kind, helm_binary, one

SCHEMA_VALUES = ["--set", "targetVersion=3", "--set", "configSecretRef.name=baselinr-config", "--set", "backup.mode=Skip"]


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm_binary(), tmp_path_factory.mktemp("helm-home"))


# --- the CRD has one source ------------------------------------------------------------


def test_chart_crd_is_the_deploy_crd_byte_for_byte() -> None:
    source = ROOT / "deploy" / "crds" / "baselinrschemas.baselinr.io.yaml"
    copies = sorted((OPERATOR_CHART / "crds").iterdir())
    assert [c.name for c in copies] == [source.name], "the chart's crds/ holds exactly the CRD of deploy/crds/"
    assert copies[0].read_bytes() == source.read_bytes(), (
        f"{copies[0].relative_to(ROOT)} differs from {source.relative_to(ROOT)}: copy it again (cp {source.relative_to(ROOT)} "
        f"{copies[0].relative_to(ROOT)})"
    )


# --- lint ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chart", "args"),
    [
        (OPERATOR_CHART, []),
        (OPERATOR_CHART, ["--set", "operator.watchNamespaces={team-a,team-b}", "--set", "metrics.service.enabled=true"]),
        (SCHEMA_CHART, []),
        (SCHEMA_CHART, SCHEMA_VALUES),
    ],
    ids=["operator", "operator-namespaced", "schema-off", "schema-on"],
)
def test_helm_lint_strict(helm: Helm, chart: Path, args: list[str]) -> None:
    proc = helm.run("lint", "--strict", str(chart), *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


# --- the operator chart ---------------------------------------------------------------------


def test_operator_deployment_defaults(helm: Helm) -> None:
    docs = helm.template(OPERATOR_CHART, namespace="baselinr-system", release="baselinr-operator")
    dep = one(docs, "Deployment")
    # Two replicas, one leader: a rolling update never leaves none running; the Lease keeps one acting.
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"] == {"minAvailable": 1, "selector": dep["spec"]["selector"]}
    pod = dep["spec"]["template"]["spec"]
    container = one([{"kind": "c", **c} for c in pod["containers"]], "c")
    assert container["command"] == ["baselinr-operator"]
    assert container["image"] == "baselinr:0.1.0"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert ports == {"health": 8081, "metrics": 8080}
    assert env["BASELINR_OPERATOR_HEALTH_PORT"] == "8081" and env["BASELINR_OPERATOR_METRICS_PORT"] == "8080"
    assert env["BASELINR_OPERATOR_NAMESPACES"] == "" and env["BASELINR_OPERATOR_IMAGE"] == "baselinr:0.1.0"
    assert env["BASELINR_OPERATOR_LEADER_ELECTION"] == "true"
    assert env["BASELINR_OPERATOR_LEASE_NAME"] == "baselinr-operator"
    assert env["BASELINR_OPERATOR_LEASE_NAMESPACE"] == "baselinr-system"
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"] == "baselinr-operator"
    assert by_kind(docs, "Service") == []
    assert [c["metadata"]["name"] for c in by_kind(docs, "CustomResourceDefinition")] == ["baselinrschemas.baselinr.io"]


def test_operator_without_leader_election_is_one_replica_recreated(helm: Helm) -> None:
    docs = helm.template(OPERATOR_CHART, "--set", "leaderElection.enabled=false", "--set", "replicas=3", release="op")
    dep = one(docs, "Deployment")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    env = {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["BASELINR_OPERATOR_LEADER_ELECTION"] == "false" and "BASELINR_OPERATOR_LEASE_NAME" not in env
    assert by_kind(docs, "PodDisruptionBudget") == [] and by_kind(docs, "Role") == []


def test_operator_lease_rights_are_its_one_lease(helm: Helm) -> None:
    docs = helm.template(OPERATOR_CHART, namespace="ops", release="op")
    role, binding = one(docs, "Role"), one(docs, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "ops"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "op-baselinr-operator", "namespace": "ops"}]
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["op-baselinr-operator"],
         "verbs": ["get", "update"]},
    ]  # fmt: skip


def test_operator_env_is_the_operators_documented_settings(helm: Helm) -> None:
    """Every BASELINR_OPERATOR_* variable the chart sets is one that baselinr_operator/settings.py reads."""
    documented = set(re.findall(r"BASELINR_OPERATOR_[A-Z_]+", (ROOT / "baselinr_operator" / "settings.py").read_text()))
    container = one(helm.template(OPERATOR_CHART), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in container["env"] if e["name"].startswith("BASELINR_OPERATOR_")}
    assert names and names <= documented, names - documented


def test_operator_cluster_wide_rbac(helm: Helm) -> None:
    docs = helm.template(OPERATOR_CHART, namespace="ops", release="op")
    role = one(docs, "ClusterRole")
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "op-baselinr-operator", "namespace": "ops"}]
    assert [b["metadata"]["name"] for b in by_kind(docs, "RoleBinding")] == ["op-baselinr-operator-leader"]  # its Lease
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert "secrets" not in resources, "the operator never reads database credentials"
    assert resources == {"baselinrschemas", "baselinrschemas/status", "jobs", "pods", "pods/log", "events"}
    for rule in role["rules"]:
        assert "*" not in rule["verbs"]
        # The only deletion: its own finished Jobs beyond the newest few (BASELINR_OPERATOR_KEEP_JOBS).
        assert "delete" not in rule["verbs"] or rule["resources"] == ["jobs"]


def test_operator_watched_namespaces_rbac(helm: Helm) -> None:
    docs = helm.template(OPERATOR_CHART, "--set", "operator.watchNamespaces={team-a,team-b}", namespace="ops", release="op")
    assert by_kind(docs, "ClusterRoleBinding") == []
    bindings = [b for b in by_kind(docs, "RoleBinding") if not b["metadata"]["name"].endswith("-leader")]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    assert all(b["subjects"][0]["namespace"] == "ops" for b in bindings)
    env = {e["name"]: e["value"] for e in one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["BASELINR_OPERATOR_NAMESPACES"] == "team-a,team-b"


def test_operator_rbac_and_service_account_can_be_left_out(helm: Helm) -> None:
    docs = helm.template(OPERATOR_CHART, "--set", "rbac.create=false", "--set", "serviceAccount.create=false", "--set",
                         "serviceAccount.name=platform-sa")
    kinds = {d["kind"] for d in docs}
    assert kinds == {"CustomResourceDefinition", "Deployment", "PodDisruptionBudget"}
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "platform-sa"


def test_operator_metrics_service_and_metrics_off(helm: Helm) -> None:
    docs = helm.template(OPERATOR_CHART, "--set", "metrics.service.enabled=true", release="op")
    service = one(docs, "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["selector"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    off = helm.template(OPERATOR_CHART, "--set", "metrics.enabled=false", "--set", "metrics.service.enabled=true")
    container = one(off, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert by_kind(off, "Service") == []
    assert {e["name"]: e["value"] for e in container["env"]}["BASELINR_OPERATOR_METRICS_PORT"] == "0"
    assert [p["name"] for p in container["ports"]] == ["health"]


def test_operator_tracing_is_off_until_an_endpoint_is_set(helm: Helm) -> None:
    def env(*args: str) -> dict[str, str]:
        container = one(helm.template(OPERATOR_CHART, *args), "Deployment")["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e["value"] for e in container["env"]}

    assert not any(k.startswith("OTEL_") or k == "BASELINR_TRACE_SQL" for k in env())
    on = env("--set", "tracing.otlpEndpoint=http://otel-collector.observability:4318", "--set", "tracing.sqlText=true")
    assert on["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert on["OTEL_SERVICE_NAME"] == "baselinr-operator" and on["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"
    assert on["BASELINR_TRACE_SQL"] == "1" and "OTEL_TRACES_SAMPLER_ARG" not in on
    ratio = env("--set", "tracing.otlpEndpoint=http://c:4318", "--set", "tracing.sampler=parentbased_traceidratio",
                "--set-string", "tracing.samplerArg=0.1")
    assert ratio["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio" and ratio["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert "BASELINR_TRACE_SQL" not in ratio


def test_operator_log_format_switches_to_json(helm: Helm) -> None:
    def env(*args: str) -> dict[str, str]:
        container = one(helm.template(OPERATOR_CHART, *args), "Deployment")["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e["value"] for e in container["env"]}

    assert env()["BASELINR_OPERATOR_LOG_FORMAT"] == "text"
    assert env("--set", "operator.logFormat=json")["BASELINR_OPERATOR_LOG_FORMAT"] == "json"


# --- values: camelCase and documented -----------------------------------------------------


def _keys(tree: Any, prefix: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            found.append(f"{prefix}{key}")
            if key not in ("podSecurityContext", "securityContext", "resources", "annotations", "volume", "jobTemplate"):
                found += _keys(value, f"{prefix}{key}.")
    return found


@pytest.mark.parametrize("chart", [OPERATOR_CHART, SCHEMA_CHART], ids=["operator", "schema"])
def test_values_are_camel_case_and_commented(chart: Path) -> None:
    text = (chart / "values.yaml").read_text()
    values = yaml.safe_load(text)
    for key in _keys(values):
        assert re.fullmatch(r"[a-z][a-zA-Z0-9]*", key.rsplit(".", 1)[-1]), f"{chart.name}: {key} is not camelCase"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-zA-Z]", line):  # a top-level key: a comment says what it is, just above or above its block
            above = lines[max(0, i - 4):i]
            key = line.split(":")[0]
            assert any(a.startswith("#") for a in above) or lines[i + 1].strip().startswith("#"), f"{chart.name}: {key}"


# --- the schema chart (for applications) ------------------------------------------------------


def test_schema_chart_renders_nothing_without_a_target(helm: Helm) -> None:
    assert helm.template(SCHEMA_CHART) == []


def test_schema_hook_job(helm: Helm) -> None:
    docs = helm.template(SCHEMA_CHART, *SCHEMA_VALUES, "--set", "wait.timeoutSeconds=300", namespace="shop", release="shop")
    assert sorted(d["kind"] for d in docs) == ["Job", "Role", "RoleBinding", "ServiceAccount"]
    assert not by_kind(docs, "BaselinrSchema"), "the resource is applied by the hook, never owned by the release"
    job = one(docs, "Job")
    ann = job["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert ann["helm.sh/hook-weight"] == "0"
    assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert ann["helm.sh/hook-output-log-policy"] == "hook-failed"
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 360
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == [
        "baselinr-schema", "wait", "shop", "--namespace=shop", "--target=3", "--timeout=300", "--apply",
        "--retry=1", "--result-file=/dev/termination-log",
    ]
    assert pod["serviceAccountName"] == "shop-schema-wait" and pod["restartPolicy"] == "Never"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    spec = json.loads({e["name"]: e.get("value") for e in container["env"]}["BASELINR_SCHEMA_SPEC"])
    assert spec == {"configSecretRef": {"name": "baselinr-config", "key": "config.yml"}, "backup": {"mode": "Skip"}}
    for support in ("ServiceAccount", "Role", "RoleBinding"):
        meta = one(docs, support)["metadata"]
        assert meta["annotations"]["helm.sh/hook-weight"] == "-10", support
        assert meta["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade", support


def test_schema_hook_retry_is_the_release_revision_or_the_value(helm: Helm) -> None:
    def retry(*args: str) -> list[str]:
        command = one(helm.template(SCHEMA_CHART, *SCHEMA_VALUES, *args), "Job")["spec"]["template"]["spec"]["containers"][0]
        return [a for a in command["command"] if a.startswith("--retry")]

    assert retry() == ["--retry=1"]  # helm template renders revision 1
    assert retry("--set", "retry=db-fixed-by-hand") == ["--retry=db-fixed-by-hand"]


def test_schema_hook_role_is_least_privilege(helm: Helm) -> None:
    docs = helm.template(SCHEMA_CHART, *SCHEMA_VALUES, namespace="shop")
    rules = {tuple(r["resources"]): set(r["verbs"]) for r in one(docs, "Role")["rules"]}
    assert rules == {
        ("baselinrschemas",): {"get", "list", "watch", "create", "patch"},
        ("baselinrschemas/status",): {"get", "list", "watch"},
    }
    assert one(docs, "RoleBinding")["roleRef"]["name"] == one(docs, "Role")["metadata"]["name"]


def test_schema_spec_json_carries_every_set_value(helm: Helm) -> None:
    values = {
        "targetVersion": 7,
        "name": "warehouse",
        "configSecretRef": {"name": "cfg", "key": "baselinr.yml"},
        "image": "registry.example/baselinr:2.0",
        "backup": {"mode": "Required", "volume": {"persistentVolumeClaim": {"claimName": "bk"}}, "subPath": "w", "keep": 5},
        "allowDowngrade": True,
        "validateInterval": "6h",
        "backoffLimit": 0,
        "activeDeadlineSeconds": 900,
        "jobTemplate": {"serviceAccountName": "migrator", "env": [{"name": "A", "value": "b"}]},
    }
    file = Path(helm.home) / "values-all.yaml"
    file.write_text(yaml.safe_dump(values))
    docs = helm.template(SCHEMA_CHART, "-f", str(file), namespace="shop")
    container = one(docs, "Job")["spec"]["template"]["spec"]["containers"][0]
    spec = json.loads(container["env"][0]["value"])
    expected = {k: v for k, v in values.items() if k not in ("targetVersion", "name")}
    assert spec == expected
    assert container["command"][2] == "warehouse" and "--target=7" in container["command"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "targetVersion=2"], "configSecretRef.name is required"),
        (["--set", "targetVersion=2", "--set", "configSecretRef.name=c"], "objectStore.bucket is required unless"),
        (["--set", "targetVersion=0", "--set", "configSecretRef.name=c", "--set", "backup.mode=Skip"], "positive integer"),
        (
            ["--set", "targetVersion=2", "--set", "configSecretRef.name=c", "--set", "backup.mode=Skip",
             "--set", "wait.serviceAccount.create=false"],
            "wait.serviceAccount.name is required",
        ),
    ],
    ids=["no-secret", "no-backup-volume", "zero-target", "no-service-account"],
)
def test_schema_chart_refuses_incomplete_values(helm: Helm, args: list[str], message: str) -> None:
    with pytest.raises(TemplateError) as info:
        helm.template(SCHEMA_CHART, *args)
    assert message in str(info.value)
