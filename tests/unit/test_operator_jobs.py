"""The operator's pure Job builders and result parsing: names, mounts, security, commands, outcomes."""

from __future__ import annotations

import json

import pytest

from baselinr_operator.jobs import (
    NAME_MAX,
    Owner,
    build_backup_job,
    build_migrate_job,
    build_validate_job,
    expired_jobs,
    job_name,
)
from baselinr_operator.outcome import job_outcome
from baselinr_operator.settings import OperatorSettings
from baselinr_operator.spec import SpecError, parse_duration, parse_spec

OWNER = Owner("analytics", "data", "uid-1")
BASE = {
    "targetVersion": 3,
    "configSecretRef": {"name": "baselinr-storage"},
    "backup": {"mode": "Required", "volume": {"persistentVolumeClaim": {"claimName": "backups"}}, "keep": 5},
}


def spec(**extra: object) -> object:
    return parse_spec({**BASE, **extra})


def test_names_are_deterministic_and_fit_a_label() -> None:
    assert job_name("analytics", "Migrate", 3, 1) == "analytics-migrate-v3-1"
    assert job_name("analytics", "Migrate", 3, 1) == job_name("analytics", "Migrate", 3, 1)
    long = "x" * 80
    a, b = job_name(long, "Backup", 12, 7), job_name(long + "y", "Backup", 12, 7)
    assert len(a) <= NAME_MAX and a.endswith("-backup-v12-7") and a != b


def test_migrate_job_mounts_the_secret_and_runs_the_engine() -> None:
    job = build_migrate_job(OWNER, spec(), 2, "baselinr:0.1.0")  # type: ignore[arg-type]
    assert job["metadata"]["name"] == "analytics-migrate-v3-2"
    assert job["metadata"]["ownerReferences"] == [
        {"apiVersion": "baselinr.io/v1alpha1", "kind": "BaselinrSchema", "name": "analytics", "uid": "uid-1", "controller": True}
    ]
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "baselinr:0.1.0"
    assert [c["command"][0], *c["args"]] == [
        "baselinr", "job", "migrate", "--config", "/etc/baselinr/config.yml",
        "--target", "3", "--result-file", "/dev/termination-log",
    ]  # fmt: skip
    secret = pod["volumes"][0]["secret"]
    assert secret["secretName"] == "baselinr-storage" and secret["items"] == [{"key": "config.yml", "path": "config.yml"}]
    assert {"name": "config", "mountPath": "/etc/baselinr", "readOnly": True} in c["volumeMounts"]
    # A kubelet never starts a Pod whose Secret or key is missing; optional, the engine reports it, naming both.
    assert secret["optional"] is True
    assert {"name": "BASELINR_CONFIG_SOURCE", "value": "key 'config.yml' of Secret 'baselinr-storage'"} in c["env"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [1, 2, 4]
    assert "password" not in json.dumps(job).lower()


def test_downgrade_flag_and_image_from_spec() -> None:
    job = build_migrate_job(OWNER, spec(allowDowngrade=True, image="reg/baselinr:9"), 1, "default")  # type: ignore[arg-type]
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][-1] == "--allow-downgrade" and c["image"] == "reg/baselinr:9"


def test_backup_job_writes_to_the_backup_volume() -> None:
    job = build_backup_job(OWNER, spec(), 1, "img")  # type: ignore[arg-type]
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["args"][:6] == ["job", "backup", "--config", "/etc/baselinr/config.yml", "--dest", "/var/backups/baselinr"]
    assert c["args"][-2:] == ["--keep", "5"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "backups"}} in pod["volumes"]
    assert job["metadata"]["labels"]["baselinr.io/step"] == "backup"


def test_job_template_is_applied() -> None:
    tpl = {
        "serviceAccountName": "migrator",
        "annotations": {"team": "data"},
        "nodeSelector": {"pool": "batch"},
        "tolerations": [{"key": "batch", "operator": "Exists"}],
        "resources": {"limits": {"memory": "256Mi"}},
        "securityContext": {"runAsUser": 1000},
        "env": [{"name": "EXTRA", "value": "1"}],
    }
    job = build_validate_job(OWNER, spec(jobTemplate=tpl), 4, "img")  # type: ignore[arg-type]
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert pod["serviceAccountName"] == "migrator" and pod["nodeSelector"] == {"pool": "batch"}
    assert pod["tolerations"] == [{"key": "batch", "operator": "Exists"}]
    assert c["resources"] == {"limits": {"memory": "256Mi"}}
    assert c["securityContext"]["runAsUser"] == 1000 and c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "EXTRA", "value": "1"} in c["env"]
    assert job["spec"]["template"]["metadata"]["annotations"] == {"team": "data"}
    assert c["args"][:2] == ["job", "validate"]


def test_spec_errors_and_durations() -> None:
    with pytest.raises(SpecError, match="targetVersion"):
        parse_spec({**BASE, "targetVersion": 0})
    with pytest.raises(SpecError, match=r"backup\.volume"):
        parse_spec({**BASE, "backup": {"mode": "Required"}})
    assert parse_spec({**BASE, "backup": {"mode": "Skip"}}).backup.mode == "Skip"
    assert parse_duration("1h30m") == 5400 and parse_duration("90s") == 90 and parse_duration("") is None
    with pytest.raises(SpecError):
        parse_duration("soon")


def test_backoff_is_exponential_with_a_cap() -> None:
    s = OperatorSettings(retry_seconds=10)
    assert [s.retry_delay(n) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert s.retry_delay(30) == 3600
    assert OperatorSettings.from_env({"BASELINR_OPERATOR_RETRY_LIMIT": "2"}).retry_limit == 2


def _job(cond: str | None) -> dict[str, object]:
    status: dict[str, object] = {"startTime": "2024-01-01T00:00:00Z"}
    if cond:
        status["conditions"] = [
            {"type": cond, "status": "True", "reason": "BackoffLimitExceeded", "lastTransitionTime": "2024-01-01T00:00:07Z"}
        ]
    return {"metadata": {"name": "j"}, "status": status}


def _pod(exit_code: int, message: str) -> dict[str, object]:
    term = {"exitCode": exit_code, "message": message, "finishedAt": "2024-01-01T00:00:06Z"}
    return {"status": {"containerStatuses": [{"state": {"terminated": term}}]}}


def test_outcome_reads_the_engine_result_from_the_termination_message() -> None:
    assert not job_outcome(_job(None), []).finished
    result = {"command": "migrate", "ok": False, "exit_code": 4, "error": "Migration v2 failed: boom"}
    out = job_outcome(_job("Failed"), [_pod(4, json.dumps(result))])
    assert out.finished and not out.succeeded and out.exit_code == 4
    assert out.error == "Migration v2 failed: boom" and not out.transient and out.duration == 7
    unreachable = job_outcome(_job("Failed"), [_pod(3, json.dumps({**result, "exit_code": 3}))])
    assert unreachable.transient
    refused = {**result, "exit_code": 3, "error_type": "AuthenticationFailed"}
    assert not job_outcome(_job("Failed"), [_pod(3, json.dumps(refused))]).transient  # never retried into a lockout
    killed = job_outcome(_job("Failed"), [_pod(137, "Traceback ... killed")])
    assert killed.transient and "BackoffLimitExceeded" in killed.error and "exited with code 137" in killed.error
    assert "Traceback" not in killed.error  # raw container output never reaches the status
    oom = _pod(137, "")
    oom["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] = "OOMKilled"  # type: ignore[index]
    killed = job_outcome(_job("Failed"), [oom])
    assert "OOMKilled" in killed.error and "spec.jobTemplate.resources.limits.memory" in killed.error
    long = job_outcome(_job("Failed"), [_pod(4, json.dumps({**result, "error": "x" * 5000}))])
    assert len(long.error) == 1024


def test_entry_point_runs_kopf_standalone_with_liveness() -> None:
    from baselinr_operator.__main__ import kopf_args

    args = kopf_args(OperatorSettings.from_env({"BASELINR_OPERATOR_NAMESPACES": "a, b"}), ["--verbose"])
    assert args[:4] == ["run", "--standalone", "-m", "baselinr_operator.handlers"]
    assert "--namespace=a" in args and "--namespace=b" in args and "--all-namespaces" not in args
    assert "--liveness=http://0.0.0.0:8081/healthz" in args and args[-1] == "--verbose"
    assert "--all-namespaces" in kopf_args(OperatorSettings(), [])
    with pytest.raises(SystemExit, match="not a number"):
        OperatorSettings.from_env({"BASELINR_OPERATOR_METRICS_PORT": "eighty"})


def test_only_finished_jobs_beyond_the_newest_few_expire() -> None:
    def job(name: str, created: str, state: str | None) -> dict[str, object]:
        conditions = [{"type": state, "status": "True"}] if state else []
        return {"metadata": {"name": name, "creationTimestamp": created}, "status": {"conditions": conditions}}

    jobs = [job(f"db-validate-v3-{i}", f"2024-01-01T00:00:0{i}Z", "Complete") for i in range(1, 6)]
    jobs += [job("db-migrate-v4-6", "2024-01-01T00:00:07Z", None), job("db-migrate-v4-0", "2024-01-01T00:00:00Z", "Failed")]
    assert expired_jobs(jobs, 2, "db-validate-v3-5") == ["db-validate-v3-3", "db-validate-v3-2", "db-validate-v3-1",
                                                         "db-migrate-v4-0"]  # fmt: skip
    assert "db-validate-v3-1" not in expired_jobs(jobs, 2, "db-validate-v3-1")  # the current run's Job stays
    assert expired_jobs(jobs, 10, None) == []
    assert expired_jobs(jobs, 0, None)[0] == "db-validate-v3-4"  # at least one is always kept
