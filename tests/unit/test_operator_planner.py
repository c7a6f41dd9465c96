"""The operator's pure planner and status writer: every step of the flow, failures, retries, drift,
suspend, a busy database, and that every status field it writes is declared in the CRD."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from baselinr_operator.outcome import JobOutcome
from baselinr_operator.planner import Facts, Plan, next_due, plan, rejected
from baselinr_operator.settings import OperatorSettings
from baselinr_operator.spec import parse_spec
from baselinr_operator.status import merge_patch

CRD = Path(__file__).resolve().parents[2] / "deploy" / "crds" / "baselinrschemas.baselinr.io.yaml"
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
SETTINGS = OperatorSettings(retry_seconds=10, retry_limit=2)
SPEC = {
    "targetVersion": 3,
    "configSecretRef": {"name": "s"},
    "backup": {"mode": "Required", "volume": {"persistentVolumeClaim": {"claimName": "b"}}},
}
PLANS: list[Plan] = []


def step(status: dict[str, Any], job: JobOutcome | None = None, *, gen: int = 1, now: datetime = T0, **kw: Any) -> Plan:
    spec = parse_spec({**SPEC, **kw.pop("spec", {})})
    p = plan(Facts("db", gen, spec, status, now, job=job, **kw), SETTINGS)
    PLANS.append(p)
    return p


def done(job: str, ok: bool, exit_code: int | None = 0, **result: Any) -> JobOutcome:
    res = {"command": "x", "exit_code": exit_code, **result} if exit_code is not None else {}
    return JobOutcome(job, True, ok, exit_code, res, "BackoffLimitExceeded", T0, T0 + timedelta(seconds=4))


def cond(p: Plan, type_: str) -> tuple[str, str]:
    c = p.draft.condition(type_)
    assert c is not None
    return c["status"], c["reason"]


def test_full_flow_backup_then_migrate_then_ready() -> None:
    p = step({"observedGeneration": -1})
    assert p.create_step == "Backup" and p.status["phase"] == "BackingUp"
    assert p.status["run"]["job"] == "db-backup-v3-1" and p.status["observedGeneration"] == 1
    assert cond(p, "Ready") == ("False", "BackupRunning") and cond(p, "Reconciling")[0] == "True"
    # Waiting: nothing to do, nothing created again.
    waiting = step(p.status, JobOutcome("db-backup-v3-1", finished=False))
    assert waiting.create_step is None and waiting.draft.patch() == {}
    # Job gone (deleted while the operator was down): create it again under the same name.
    assert step(p.status, None).create_step == "Backup"
    backed = step(p.status, done("db-backup-v3-1", True, name="b1", location="/b/b1", current_version=2))
    assert backed.create_step == "Migrate" and backed.status["run"]["job"] == "db-migrate-v3-1"
    assert backed.status["lastBackup"]["location"] == "/b/b1" and cond(backed, "BackedUp") == ("True", "BackupSucceeded")
    migrated = step(
        backed.status,
        done("db-migrate-v3-1", True, from_version=2, current_version=3, code_version=5, applied=[3], valid=True, errors=[]),
    )
    s = migrated.status
    assert (s["phase"], s["currentVersion"], s["codeVersion"], s["valid"]) == ("Ready", 3, 5, True)
    assert s["lastMigration"] == {"from": 2, "to": 3, "job": "db-migrate-v3-1", "durationSeconds": 4.0,
                                  "time": "2024-01-01T00:00:04Z", "succeeded": True}  # fmt: skip
    assert cond(migrated, "Ready") == ("True", "AtTargetVersion") and cond(migrated, "Stalled")[0] == "False"
    assert migrated.finished is not None and migrated.finished.step == "Migrate"
    assert [e.reason for e in migrated.events] == ["MigrationSucceeded"]
    # At the target: stable, no further writes.
    again = step(s)
    assert again.create_step is None and again.draft.patch() == {}


def test_skip_mode_goes_straight_to_migrate() -> None:
    p = step({}, spec={"backup": {"mode": "Skip"}})
    assert p.create_step == "Migrate" and p.status["phase"] == "Migrating"


def test_failed_backup_in_required_mode_stops_the_flow() -> None:
    p = step({})
    failed = step(p.status, done("db-backup-v3-1", False, 2, error="No space left"))
    assert failed.create_step is None and failed.status["phase"] == "Failed"
    assert cond(failed, "Stalled") == ("True", "BackupFailed") and "No space left" in failed.status["message"]
    assert [(e.type, e.reason) for e in failed.events] == [("Warning", "BackupFailed")]
    assert step(failed.status).create_step is None  # stays stalled


def test_failed_backup_in_optional_mode_still_migrates() -> None:
    opt = {"backup": {"mode": "Optional", "volume": {"persistentVolumeClaim": {"claimName": "b"}}}}
    p = step({}, spec=opt)
    failed = step(p.status, done("db-backup-v3-1", False, 2, error="disk"), spec=opt)
    assert failed.create_step == "Migrate" and cond(failed, "BackedUp") == ("False", "BackupFailed")


def test_refused_credentials_stall_at_once_and_stop_an_optional_backup_run() -> None:
    skip = {"backup": {"mode": "Skip"}}
    p = step({}, spec=skip)
    refused = done("db-migrate-v3-1", False, 3, error="Cannot connect: the server refused the credentials",
                   error_type="AuthenticationFailed")  # fmt: skip
    failed = step(p.status, refused, spec=skip)
    assert cond(failed, "Stalled") == ("True", "MigrationFailed") and failed.status["retry"] == {"failures": 1}
    assert "refused the credentials" in failed.status["message"] and "retry 1 of" not in failed.status["message"]
    assert step(failed.status, now=T0 + timedelta(hours=1), spec=skip).create_step is None  # nothing by itself
    # The same exit code without that type is still a transient failure.
    unreachable = done("db-migrate-v3-1", False, 3, error="Cannot connect", error_type="DatabaseUnavailable")
    assert cond(step(p.status, unreachable, spec=skip), "Stalled") == ("False", "RetryScheduled")
    # An Optional backup refused its credentials: the migration would be refused too, so it does not run.
    opt = {"backup": {"mode": "Optional", "volume": {"persistentVolumeClaim": {"claimName": "b"}}}}
    b = step({}, spec=opt)
    backup = done("db-backup-v3-1", False, 3, error="the server refused the credentials", error_type="AuthenticationFailed")
    stopped = step(b.status, backup, spec=opt)
    assert stopped.create_step is None and cond(stopped, "Stalled") == ("True", "BackupFailed")
    assert "no migration ran" in stopped.status["message"]


def test_failed_migration_stalls_until_spec_change_or_retry_annotation() -> None:
    p = step({}, spec={"backup": {"mode": "Skip"}})
    failed = step(p.status, done("db-migrate-v3-1", False, 4, error="Migration v2 failed: boom", current_version=1))
    s = failed.status
    assert s["phase"] == "Failed" and s["currentVersion"] == 1 and "Migration v2 failed: boom" in s["message"]
    assert cond(failed, "Stalled") == ("True", "MigrationFailed") and cond(failed, "Migrated")[0] == "False"
    assert step(s, spec={"backup": {"mode": "Skip"}}).create_step is None
    retried = step(s, spec={"backup": {"mode": "Skip"}}, retry_token="1")
    assert retried.create_step == "Migrate" and retried.status["run"]["id"] == 2 and retried.status["retryToken"] == "1"
    # The same annotation value again does nothing more.
    assert step({**s, "retryToken": "1"}, spec={"backup": {"mode": "Skip"}}, retry_token="1").create_step is None
    changed = step(s, gen=2, spec={"backup": {"mode": "Skip"}, "targetVersion": 4})
    assert changed.create_step == "Migrate" and changed.status["run"]["job"] == "db-migrate-v4-2"


def test_transient_failures_back_off_then_give_up() -> None:
    p = step({}, spec={"backup": {"mode": "Skip"}})
    f1 = step(p.status, done("db-migrate-v3-1", False, 3, error="Cannot connect"), spec={"backup": {"mode": "Skip"}})
    assert f1.status["retry"] == {"failures": 1, "notBefore": "2024-01-01T00:00:10Z"}
    assert cond(f1, "Reconciling") == ("True", "RetryScheduled") and cond(f1, "Stalled")[0] == "False"
    assert next_due(f1.status, None) == T0 + timedelta(seconds=10)
    assert step(f1.status, now=T0 + timedelta(seconds=5), spec={"backup": {"mode": "Skip"}}).create_step is None
    r2 = step(f1.status, now=T0 + timedelta(seconds=11), spec={"backup": {"mode": "Skip"}})
    assert r2.create_step == "Migrate" and r2.status["run"]["id"] == 2
    f2 = step(r2.status, done("db-migrate-v3-2", False, None), spec={"backup": {"mode": "Skip"}})
    assert f2.status["retry"]["notBefore"] == "2024-01-01T00:00:20Z"  # doubled
    r3 = step(f2.status, now=T0 + timedelta(seconds=30), spec={"backup": {"mode": "Skip"}})
    f3 = step(r3.status, done("db-migrate-v3-3", False, 3, error="Cannot connect"), spec={"backup": {"mode": "Skip"}})
    assert cond(f3, "Stalled") == ("True", "RetriesExhausted") and "notBefore" not in f3.status["retry"]


def test_validation_failure_after_migrating_is_reported() -> None:
    p = step({}, spec={"backup": {"mode": "Skip"}})
    bad = step(p.status, done("db-migrate-v3-1", False, 1, current_version=3, valid=False, errors=["v2 was modified"]),
               spec={"backup": {"mode": "Skip"}})  # fmt: skip
    assert bad.status["valid"] is False and bad.status["currentVersion"] == 3
    assert cond(bad, "Validated") == ("False", "ValidationFailed") and cond(bad, "Stalled") == ("True", "ValidationFailed")


def test_drift_check_runs_on_interval_and_never_migrates() -> None:
    spec = {"backup": {"mode": "Skip"}, "validateInterval": "1h"}
    ready = {"phase": "Ready", "currentVersion": 3, "valid": True, "run": {"id": 1, "step": "Done"},
             "validation": {"time": "2024-01-01T00:00:00Z"}}  # fmt: skip
    assert step(ready, spec=spec, now=T0 + timedelta(minutes=30)).create_step is None
    due = step(ready, spec=spec, now=T0 + timedelta(hours=1))
    assert due.create_step == "Validate" and due.status["phase"] == "Validating"
    assert due.status["run"]["job"] == "db-validate-v3-2"
    drift = step(due.status, done("db-validate-v3-2", False, 1, current_version=3, valid=False, errors=["column x missing"]),
                 spec=spec)  # fmt: skip
    assert drift.create_step is None and drift.status["valid"] is False and drift.status["phase"] == "Failed"
    assert drift.status["currentVersion"] == 3 and [e.type for e in drift.events] == ["Warning"]


def test_suspend_and_busy_database() -> None:
    s = step({}, spec={"suspend": True})
    assert s.create_step is None and s.status["phase"] == "Suspended" and cond(s, "Ready") == ("False", "Suspended")
    busy = step({}, busy_with="data/other")
    assert busy.create_step is None and busy.status["phase"] == "Pending"
    assert cond(busy, "Reconciling") == ("True", "WaitingForDatabase") and busy.events[0].type == "Warning"
    assert step(busy.status, busy_with="data/other").events == []  # reported once


def test_a_run_for_an_older_target_never_ends_ready() -> None:
    """The target moved from 3 to 4 while v3's Job ran: its success starts v4, Ready stays False."""
    skip = {"backup": {"mode": "Skip"}}
    p = step({}, spec=skip)
    finished = step(
        p.status,
        done("db-migrate-v3-1", True, from_version=1, current_version=3, applied=[2, 3], valid=True, errors=[]),
        gen=2,
        spec={**skip, "targetVersion": 4},
    )
    s = finished.status
    assert s["currentVersion"] == 3 and s["phase"] == "Migrating" and finished.create_step == "Migrate"
    assert s["run"]["job"] == "db-migrate-v4-2" and s["observedGeneration"] == 2
    assert cond(finished, "Ready") == ("False", "MigrationRunning") and cond(finished, "Migrated")[0] == "True"
    assert [e.reason for e in finished.events] == ["MigrationSucceeded", "MigrationRunning"]


def test_a_job_deleted_before_it_finished_fails_the_run() -> None:
    p = step({}, spec={"backup": {"mode": "Skip"}})
    gone = step(p.status, None, job_gone=True, spec={"backup": {"mode": "Skip"}})
    assert gone.create_step is None and gone.status["phase"] == "Failed" and gone.status["run"]["step"] == "Failed"
    assert cond(gone, "Stalled") == ("True", "JobDeleted") and "db-migrate-v3-1 was deleted" in gone.status["message"]
    assert [(e.type, e.reason) for e in gone.events] == [("Warning", "JobDeleted")]
    assert step(gone.status, spec={"backup": {"mode": "Skip"}}, retry_token="x").create_step == "Migrate"


def test_a_rejected_job_stalls_with_the_api_servers_message_and_a_fixed_spec_runs() -> None:
    p = step({}, spec={"backup": {"mode": "Skip"}})
    facts = Facts("db", 1, parse_spec({**SPEC, "backup": {"mode": "Skip"}}), p.status, T0)
    r = rejected(facts, "400 Bad Request: cannot unmarshal number into Go struct field EnvVar.value")
    assert r.status["phase"] == "Failed" and r.status["run"]["step"] == "Failed" and r.create_step is None
    assert cond(r, "Stalled") == ("True", "JobRejected") and "cannot unmarshal number" in r.status["message"]
    assert step(r.status, spec={"backup": {"mode": "Skip"}}).create_step is None  # not again by itself
    fixed = step(r.status, gen=2, spec={"backup": {"mode": "Skip"}, "activeDeadlineSeconds": 60})
    assert fixed.create_step == "Migrate" and fixed.status["observedGeneration"] == 2


def test_a_job_the_operator_does_not_allow_is_never_asked_for() -> None:
    p = step({}, spec={"image": "evil.example/x:1"})
    assert p.create_step is None and p.status["phase"] == "Failed" and p.status["observedGeneration"] == 1
    assert cond(p, "Stalled") == ("True", "NotAllowed") and "'evil.example/x:1'" in p.status["message"]
    assert [(e.type, e.reason) for e in p.events] == [("Warning", "NotAllowed")]
    assert step(p.status, spec={"image": "evil.example/x:1"}).events == []  # said once
    fixed = step(p.status, gen=2, spec={"image": "baselinr:0.2.0"})
    assert fixed.create_step == "Backup"


def test_merge_patch_and_condition_times() -> None:
    assert merge_patch({"a": 1, "b": {"c": 1, "d": 2}}, {"b": {"c": 1, "d": 3}, "e": [1]}) == {"a": None, "b": {"d": 3}, "e": [1]}
    p = step({})
    later = step(p.status, JobOutcome("db-backup-v3-1", finished=False), now=T0 + timedelta(hours=1))
    assert later.draft.condition("Ready")["lastTransitionTime"] == "2024-01-01T00:00:00Z"  # type: ignore[index]


def _declared(schema: dict[str, Any], value: Any, path: str) -> None:
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return
        props = schema.get("properties") or {}
        for key, sub in value.items():
            assert key in props, f"status field {path}.{key} is not declared in the CRD (it would be pruned)"
            _declared(props[key], sub, f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _declared(schema["items"], item, path + "[]")


def test_every_status_field_written_is_declared_in_the_crd() -> None:
    crd = yaml.safe_load(CRD.read_text())
    version = crd["spec"]["versions"][0]
    status_schema = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status_schema["properties"]["observedGeneration"]["default"] == -1
    for name in ("test_full_flow_backup_then_migrate_then_ready", "test_transient_failures_back_off_then_give_up",
                 "test_drift_check_runs_on_interval_and_never_migrates", "test_suspend_and_busy_database",
                 "test_failed_migration_stalls_until_spec_change_or_retry_annotation"):  # fmt: skip
        globals()[name]()
    assert PLANS
    for p in PLANS:
        _declared(status_schema, p.status, "status")
    columns = [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert [c for c, _ in columns] == ["Target", "Current", "Phase", "Valid", "Ready", "Age"]
    assert crd["spec"]["names"]["shortNames"] == ["bschema"]


def test_a_target_the_image_does_not_know_is_refused_before_any_backup() -> None:
    at2 = {"currentVersion": 2, "codeVersion": 3, "codeImage": "baselinr:0.1.0", "run": {"id": 1, "step": "Done"}}
    p = step(at2, spec={"targetVersion": 4})
    assert p.create_step is None and cond(p, "Stalled") == ("True", "TargetAboveCodeVersion")
    assert "above v3, the latest version image baselinr:0.1.0 knows" in p.status["message"]
    assert step(p.status, spec={"targetVersion": 4}).events == []  # said once
    assert step(at2, spec={"targetVersion": 4, "image": "baselinr:0.2.0"}).create_step == "Backup"  # another image may


def test_suspended_at_the_target_is_ready_and_a_rollback_says_so() -> None:
    at3 = {"currentVersion": 3, "valid": True, "run": {"id": 1, "step": "Done"}}
    s = step(at3, spec={"suspend": True})
    assert s.status["phase"] == "Suspended" and cond(s, "Ready") == ("True", "AtTargetVersion")
    down = {"backup": {"mode": "Skip"}, "targetVersion": 1, "allowDowngrade": True}
    p = step({"currentVersion": 3}, spec=down)
    rolled = step(p.status, done("db-migrate-v1-1", True, from_version=3, current_version=1, applied=[3, 2],
                                 direction="down", valid=True, errors=[]), spec=down)  # fmt: skip
    assert [e.message for e in rolled.events] == ["Migrate Job db-migrate-v1-1 succeeded: Migrated to v1: rolled back v3, v2"]


def test_a_pod_that_cannot_start_is_said_at_once_and_a_configuration_error_fails_the_run() -> None:
    from baselinr_operator.outcome import Trouble

    skip = {"backup": {"mode": "Skip"}}
    p = step({}, spec=skip)
    config = Trouble("CreateContainerConfigError", "Pod x: CreateContainerConfigError: secret \"s\" not found", True)
    waiting = JobOutcome("db-migrate-v3-1", False, started=T0, trouble=config)
    early = step(p.status, waiting, now=T0 + timedelta(seconds=5), spec=skip)
    assert early.status["phase"] == "Migrating" and "is waiting: Pod x: CreateContainerConfigError" in early.status["message"]
    assert cond(early, "Reconciling") == ("True", "PodNotStarting") and early.delete_job is None
    assert step(early.status, waiting, now=T0 + timedelta(seconds=6), spec=skip).events == []  # said once
    late = step(early.status, waiting, now=T0 + timedelta(seconds=31), spec=skip)
    assert cond(late, "Stalled") == ("True", "PodCannotStart") and late.delete_job == "db-migrate-v3-1"
    pulling = JobOutcome("db-migrate-v3-1", False, started=T0, trouble=Trouble("ImagePullBackOff", "Pod x: back-off", False))
    assert step(p.status, pulling, now=T0 + timedelta(hours=1), spec=skip).status["phase"] == "Migrating"  # may clear
    # A spec change replaces the stuck run; a run whose Pod is merely starting is left alone.
    new = step(early.status, waiting, gen=2, now=T0 + timedelta(seconds=8), spec={**skip, "activeDeadlineSeconds": 60})
    assert new.delete_job == "db-migrate-v3-1" and new.create_step == "Migrate" and new.status["run"]["id"] == 2
    starting = JobOutcome("db-migrate-v3-1", False, started=T0)
    assert step(p.status, starting, gen=2, spec={**skip, "activeDeadlineSeconds": 60}).delete_job is None


def test_an_image_pull_that_flaps_between_reasons_is_one_event() -> None:
    from baselinr_operator.outcome import Trouble

    skip = {"backup": {"mode": "Skip"}}
    p = step({}, spec=skip)
    pull = JobOutcome("db-migrate-v3-1", False, started=T0, trouble=Trouble("ErrImagePull", "Pod x: ErrImagePull: 404", False))
    back = JobOutcome("db-migrate-v3-1", False, started=T0, trouble=Trouble("ImagePullBackOff", "Pod x: ImagePullBackOff", False))
    first = step(p.status, pull, spec=skip)
    second = step(first.status, back, spec=skip)
    assert [e.reason for e in first.events] == ["PodNotStarting"] and second.events == []
    assert "ImagePullBackOff" in second.status["message"]
