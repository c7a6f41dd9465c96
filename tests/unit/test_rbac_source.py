"""The operator's RBAC has one source, ``helm/baselinr-operator/files/operator-rules.yaml``.

The chart's ClusterRole (rendered by the real ``helm`` binary, cluster-wide
and per watched namespace) and the plain manifests of ``deploy/`` must grant
exactly those rules; a difference between them (as once ``events.k8s.io`` in
``deploy/`` only) fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.helm import OPERATOR_CHART, ROOT, Helm, helm_binary, one

SOURCE = OPERATOR_CHART / "files" / "operator-rules.yaml"


def rules_of(role: dict[str, Any]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def source_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load(SOURCE.read_text())
    return rules


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm_binary(), tmp_path_factory.mktemp("helm-home"))


def test_the_source_is_least_privilege() -> None:
    rules = source_rules()
    resources = {r for rule in rules for r in rule["resources"]}
    assert "secrets" not in resources, "the operator never reads database credentials"
    assert all("*" not in rule["verbs"] and "*" not in rule["resources"] for rule in rules)
    assert {g for rule in rules for g in rule["apiGroups"]} == {"baselinr.io", "batch", ""}
    assert [r for r in rules if "delete" in r["verbs"]] == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create", "delete"]}
    ]


@pytest.mark.parametrize("args", [[], ["--set", "operator.watchNamespaces={team-a,team-b}"]])
def test_the_chart_grants_the_source(helm: Helm, args: list[str]) -> None:
    docs = helm.template(OPERATOR_CHART, *args, namespace="ops", release="op")
    assert rules_of(one(docs, "ClusterRole")) == source_rules()


@pytest.mark.parametrize(("manifest", "kind"), [("rbac.yaml", "ClusterRole"), ("rbac-namespaced.yaml", "Role")])
def test_deploy_grants_the_source(manifest: str, kind: str) -> None:
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / manifest).read_text()) if d]
    assert rules_of(one(docs, kind)) == source_rules()


def test_a_changed_copy_is_caught(tmp_path: Path) -> None:
    """The comparison is of rules, not text: one more API group in a copy is a difference."""
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()) if d]
    role = one(docs, "ClusterRole")
    role["rules"][-1]["apiGroups"].append("events.k8s.io")
    assert rules_of(role) != source_rules()


def test_deploy_grants_the_charts_lease_rights(helm: Helm) -> None:
    """The leader election's Role: the chart's (for its release's Lease) and ``deploy/operator.yaml``'s agree."""
    chart = one(helm.template(OPERATOR_CHART, namespace="ops", release="baselinr-operator"), "Role")
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "operator.yaml").read_text()) if d]
    assert rules_of(one(docs, "Role")) == rules_of(chart)
