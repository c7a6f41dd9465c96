"""What a BaselinrSchema may put into the operator's Jobs: allowed images, ServiceAccounts and volume kinds,
security contexts that only tighten the restricted profile, env without other Secrets; and that the builders
keep the restricted profile whatever they are given."""

from __future__ import annotations

from typing import Any

from baselinr_operator.jobs import Owner, build_backup_job, build_migrate_job
from baselinr_operator.policy import image_repository, violations
from baselinr_operator.settings import OperatorSettings
from baselinr_operator.spec import parse_spec

BASE = {
    "targetVersion": 3,
    "configSecretRef": {"name": "baselinr-storage"},
    "backup": {"mode": "Required", "volume": {"persistentVolumeClaim": {"claimName": "backups"}}},
}
SETTINGS = OperatorSettings(image="registry.example.com/data/baselinr:0.1.0")


def refused(settings: OperatorSettings = SETTINGS, **spec: Any) -> list[str]:
    return violations(parse_spec({**BASE, **spec}), settings)


def test_image_repositories() -> None:
    assert image_repository("registry.example.com:5000/data/baselinr:1.2@sha256:ab") == "registry.example.com:5000/data/baselinr"
    assert image_repository("baselinr") == "baselinr"
    assert refused() == []
    assert refused(image="registry.example.com/data/baselinr:0.2.0") == []
    (line,) = refused(image="docker.io/library/busybox:latest")
    assert "spec.image 'docker.io/library/busybox:latest'" in line and "registry.example.com/data/baselinr" in line
    assert refused(image="registry.example.com/data/baselinr-evil:1")  # a prefix of the name is not the name
    prefix = OperatorSettings(allowed_images=("registry.example.com/data/",))
    assert refused(prefix, image="registry.example.com/data/other:1") == []
    assert refused(prefix, image="registry.example.com/datax/other:1")


def test_service_accounts_and_volume_kinds() -> None:
    assert refused(jobTemplate={"serviceAccountName": "default"}) == []
    (line,) = refused(jobTemplate={"serviceAccountName": "cluster-admin-sa"})
    assert "'cluster-admin-sa' is not an allowed ServiceAccount (allowed: none)" in line
    allowed = OperatorSettings(allowed_service_accounts=("migrator",))
    assert refused(allowed, jobTemplate={"serviceAccountName": "migrator"}) == []
    (line,) = refused(backup={"mode": "Required", "volume": {"hostPath": {"path": "/"}}})
    assert "spec.backup.volume of kind hostPath is not allowed (allowed: persistentVolumeClaim)" in line
    assert refused(backup={"mode": "Skip", "volume": {"hostPath": {"path": "/"}}}) == []  # never mounted
    two = {"persistentVolumeClaim": {"claimName": "b"}, "hostPath": {"path": "/"}}
    assert refused(backup={"mode": "Required", "volume": two})


def test_security_context_can_only_be_tightened() -> None:
    tighter = {"podSecurityContext": {"runAsUser": 2000, "fsGroup": 3000}, "securityContext": {"runAsUser": 2000,
               "capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False}}  # fmt: skip
    assert refused(jobTemplate=tighter) == []
    loose = {
        "podSecurityContext": {"runAsUser": 0, "hostPID": True},
        "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}, "runAsNonRoot": False},
        "annotations": {"container.apparmor.security.beta.kubernetes.io/baselinr": "unconfined"},
    }
    lines = refused(jobTemplate=loose)
    assert len(lines) == 6, lines
    assert any("podSecurityContext.runAsUser must be a user or group id of at least 1, got 0" in x for x in lines)
    assert any("podSecurityContext.hostPID cannot be set" in x for x in lines)
    assert any("securityContext.privileged must be false" in x for x in lines)


def test_env_reaches_no_other_secret() -> None:
    own = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "baselinr-storage", "key": "password"}}},
           {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, {"name": "A", "value": "b"}]  # fmt: skip
    assert refused(jobTemplate={"env": own}) == []
    other = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "team-b-db", "key": "password"}}},
             {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]  # fmt: skip
    lines = refused(jobTemplate={"env": other})
    assert len(lines) == 2 and "env[0].valueFrom.secretKeyRef may only name the config Secret" in lines[0]


def test_builders_keep_the_restricted_profile_whatever_they_are_given() -> None:
    loose = {
        "podSecurityContext": {"runAsUser": 0, "runAsNonRoot": False, "hostNetwork": True},
        "securityContext": {"privileged": True, "capabilities": {"add": ["ALL"]}, "readOnlyRootFilesystem": False},
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "team-b-db", "key": "pw"}}}],
        "annotations": {"container.apparmor.security.beta.kubernetes.io/baselinr": "unconfined", "team": "a"},
    }
    spec = parse_spec({**BASE, "jobTemplate": loose})
    owner = Owner("a", "ns", "u")
    for job in (build_migrate_job(owner, spec, 1, "img"), build_backup_job(owner, spec, 1, "img")):
        pod = job["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert pod["securityContext"] == {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                                          "seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": True}  # fmt: skip
        assert c["securityContext"] == {"allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
                                        "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}  # fmt: skip
        assert "hostNetwork" not in pod
        assert [e["name"] for e in c["env"]] == ["HOME", "TMPDIR", "BASELINR_CONFIG_SOURCE", "BASELINR_RESOURCE"]
        assert job["spec"]["template"]["metadata"]["annotations"] == {"team": "a"}
        assert c["terminationMessagePolicy"] == "File"
