"""``baselinr-schema wait``: the pure decision over a BaselinrSchema, the applied object, and bad input.

The statuses are written by the operator's own status writer
(``baselinr_operator.status.StatusDraft``), so these tests follow the shapes
the operator really produces. The waiter against a real API server is in
``tests/e2e/test_helm_wait.py``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from baselinr_operator.status import Phase, Reason, StatusDraft
from baselinr_operator.waiter import EXIT_USAGE, desired, failure_message, judge, main, parse_spec

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)


def resource(target: int, generation: int, status: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "baselinr.io/v1alpha1",
        "kind": "BaselinrSchema",
        "metadata": {"name": "app", "namespace": "ns", "generation": generation},
        "spec": {"targetVersion": target, "configSecretRef": {"name": "cfg"}},
    }
    if status is not None:
        body["status"] = status
    return body


def draft(generation: int, current: int | None, *, observed: bool = True, base: dict[str, Any] | None = None) -> StatusDraft:
    d = StatusDraft(base or {}, generation, NOW)
    d.set(currentVersion=current)
    if observed:
        d.observed()
    return d


def test_ready_at_target_is_done() -> None:
    d = draft(2, 2)
    d.ready("At version 2")
    verdict = judge(resource(2, 2, d.data), 2)
    assert verdict.exit_code == 0 and verdict.final


def test_ready_at_the_old_version_is_not_done() -> None:
    """The hook just raised the target: the status still says Ready at the previous version, for an older generation."""
    d = draft(1, 1)
    d.ready("At version 1")
    verdict = judge(resource(2, 2, d.data), 2)
    assert verdict.exit_code is None
    assert "generation 2" in verdict.message


def test_a_stale_failure_of_an_older_generation_is_not_final() -> None:
    d = draft(1, 1)
    d.failed(Reason.MIGRATION_FAILED, "Migrate Job app-migrate-v2-1 failed: boom", retrying=False)
    assert judge(resource(3, 2, d.data), 3).exit_code is None


def test_migrating_keeps_waiting_and_says_so() -> None:
    d = draft(2, 1)
    d.progressing(Phase.MIGRATING, Reason.MIGRATION_RUNNING, "Migrating to v2 (Job app-migrate-v2-1)")
    verdict = judge(resource(2, 2, d.data), 2)
    assert verdict.exit_code is None
    assert "Migrating to v2" in verdict.message and "current version 1" in verdict.message


def test_stalled_failure_exits_4_with_the_engines_message() -> None:
    d = draft(2, 1)
    message = "Migrate Job app-migrate-v2-1 failed: Migration v2 failed: relation \"nope\" does not exist"
    d.failed(Reason.MIGRATION_FAILED, message, retrying=False)
    verdict = judge(resource(2, 2, d.data), 2)
    assert verdict.exit_code == 4
    assert message in verdict.message


def test_a_retrying_failure_keeps_waiting() -> None:
    d = draft(2, 1)
    d.failed(Reason.MIGRATION_FAILED, "Migrate Job x failed: database unreachable (retry 1 of 5 in 30s)", retrying=True)
    verdict = judge(resource(2, 2, d.data), 2)
    assert verdict.exit_code is None
    assert "retry 1 of 5" in verdict.message


def test_retries_exhausted_is_final() -> None:
    d = draft(2, 1)
    d.failed(Reason.RETRIES_EXHAUSTED, "database unreachable (gave up after 5 retries)", retrying=False)
    assert judge(resource(2, 2, d.data), 2).exit_code == 4


def test_validation_failure_names_the_errors() -> None:
    d = draft(2, 2)
    d.validation(False, ["missing column baselinr_runs.status"], [], "app-migrate-v2-1")
    d.failed(Reason.VALIDATION_FAILED, "Validation after migrating failed", retrying=False)
    verdict = judge(resource(2, 2, d.data), 2)
    assert verdict.exit_code == 4
    assert "missing column baselinr_runs.status" in verdict.message


def test_invalid_spec_is_final() -> None:
    d = draft(2, None, observed=False)
    d.invalid_spec("spec.backup.volume is required unless spec.backup.mode is Skip")
    verdict = judge(resource(2, 2, d.data), 2)
    assert verdict.exit_code == 4 and "backup.volume" in verdict.message


def test_suspended_exits_1() -> None:
    d = draft(2, 1)
    d.suspended("Suspended: no Job is started while spec.suspend is true")
    verdict = judge(resource(2, 2, d.data), 2)
    assert verdict.exit_code == 1 and "uspended" in verdict.message


def test_new_object_without_status_waits() -> None:
    assert judge(resource(1, 1, None), 1).exit_code is None
    assert judge(None, 1).exit_code is None


def test_another_target_in_the_spec_waits() -> None:
    d = draft(3, 3)
    d.ready("At version 3")
    verdict = judge(resource(3, 3, d.data), 2)
    assert verdict.exit_code is None and "targetVersion is 3" in verdict.message


def test_failure_message_falls_back_to_the_status_message() -> None:
    assert failure_message({"message": "it broke"}) == "it broke"
    assert failure_message({}) == ""


def test_desired_sets_the_target_over_the_spec() -> None:
    body = desired("app", "ns", 4, {"configSecretRef": {"name": "cfg"}, "backup": {"mode": "Skip"}})
    assert body["spec"] == {"configSecretRef": {"name": "cfg"}, "backup": {"mode": "Skip"}, "targetVersion": 4}
    assert body["metadata"] == {"name": "app", "namespace": "ns"}
    assert body["apiVersion"] == "baselinr.io/v1alpha1" and body["kind"] == "BaselinrSchema"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[1]", "must be a JSON object"), ("{", "not valid JSON"), ('{"targetVersion": 3}', "pass --target")],
)
def test_parse_spec_rejects(text: str, expected: str) -> None:
    from baselinr_operator.waiter import WaitError

    with pytest.raises(WaitError) as info:
        parse_spec(text)
    assert expected in info.value.message and info.value.exit_code == EXIT_USAGE


def test_parse_spec_accepts_an_object_or_nothing() -> None:
    assert parse_spec('{"configSecretRef": {"name": "cfg"}}') == {"configSecretRef": {"name": "cfg"}}
    assert parse_spec(None) == {} and parse_spec("  ") == {}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_apply_without_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "wait", "app", "--apply")
    assert code == 2 and err.strip() == "Error: --apply needs --target"


def test_cli_bad_spec_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    result = tmp_path / "termination-log"
    code, _, err = run(capsys, "wait", "app", "--apply", "--target", "2", "--spec", "{nope", "--result-file", str(result))
    assert code == 2 and "BASELINR_SCHEMA_SPEC is not valid JSON" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "not valid JSON" in result.read_text()


def test_cli_missing_kubeconfig(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "wait", "app", "--target", "2", "--kubeconfig", str(tmp_path / "absent"))
    assert code == 2 and "Cannot load the kubeconfig" in err and "Traceback" not in err


def test_cli_bad_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "wait", "app", "--target", "0")
    assert code == 2 and "--target" in err


def test_cli_unreachable_api_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A kubeconfig that points at a closed port: one line, exit 3, no token in the output."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: s3cret-token}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: team}}]\n"
    )
    code, out, err = run(capsys, "wait", "app", "--target", "2", "--timeout", "5", "--kubeconfig", str(kubeconfig))
    assert code == 3, (out, err)
    assert "BaselinrSchema team/app" in err and "unreachable" in err
    assert "s3cret-token" not in out + err and "Traceback" not in err


def test_a_failure_from_before_the_requested_retry_is_not_final() -> None:
    d = draft(2, 1)
    d.failed(Reason.MIGRATION_FAILED, "Migrate Job app-migrate-v2-1 failed: boom", retrying=False)
    assert judge(resource(2, 2, d.data), 2).exit_code == 4
    waiting = judge(resource(2, 2, d.data), 2, retry="7")
    assert waiting.exit_code is None and "retry '7'" in waiting.message
    d.set(retryToken="7")
    assert judge(resource(2, 2, d.data), 2, retry="7").exit_code == 4  # the retry itself failed: final


def test_desired_carries_the_retry_annotation() -> None:
    body = desired("app", "ns", 3, {}, retry="12")
    assert body["metadata"]["annotations"] == {"baselinr.io/retry": "12"}
    assert "annotations" not in desired("app", "ns", 3, {})["metadata"]
