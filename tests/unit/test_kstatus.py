"""What kstatus (Flux's health check, kpt, ``cli-utils`` apply) makes of a BaselinrSchema in each phase.

The statuses are the operator's own: written by its pure planner and status
writer over the flow's steps (as ``test_operator_planner.py`` drives them).
The verdicts are the real library's, ``sigs.k8s.io/cli-utils/pkg/kstatus/status``
v0.37.2, built from the Go module proxy into a small checker by
``tests/kstatus/build.sh`` (cached per machine): Ready is Current, a run in
progress (or a retry scheduled) InProgress, a stalled failure Failed, a spec
the operator has not seen yet InProgress, and a suspended resource Current
only at its target (kstatus reads ``Ready=False`` as InProgress).
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from baselinr_operator.outcome import JobOutcome
from baselinr_operator.planner import Facts, plan
from baselinr_operator.settings import OperatorSettings
from baselinr_operator.spec import parse_spec
from baselinr_operator.status import StatusDraft

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
SETTINGS = OperatorSettings(retry_seconds=10, retry_limit=2)
SPEC = {
    "targetVersion": 3,
    "configSecretRef": {"name": "s"},
    "backup": {"mode": "Required", "volume": {"persistentVolumeClaim": {"claimName": "b"}}},
}


@pytest.fixture(scope="module")
def checker() -> Path:
    done = subprocess.run(["bash", str(ROOT / "tests" / "kstatus" / "build.sh")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def step(status: dict[str, Any], job: JobOutcome | None = None, gen: int = 1, **spec: Any) -> dict[str, Any]:
    return plan(Facts("db", gen, parse_spec({**SPEC, **spec}), status, T0, job=job), SETTINGS).status


def done(job: str, ok: bool, exit_code: int | None, **result: Any) -> JobOutcome:
    res = {"command": "x", "exit_code": exit_code, **result}
    return JobOutcome(job, True, ok, exit_code, res, "", T0, T0 + timedelta(seconds=4))


def phases() -> dict[str, tuple[dict[str, Any], int, str]]:
    """Each phase's status, the resource's generation, and the verdict kstatus must give."""
    backing_up = step({"observedGeneration": -1})
    migrating = step(backing_up, done("db-backup-v3-1", True, 0, name="b1", location="/b/b1", current_version=2))
    ready = step(migrating, done("db-migrate-v3-1", True, 0, from_version=2, current_version=3, applied=[3], valid=True))
    failed = step(migrating, done("db-migrate-v3-1", False, 4, error="Migration v3 failed", current_version=2))
    retrying = step(migrating, done("db-migrate-v3-1", False, 3, error="Cannot connect", current_version=2))
    invalid = StatusDraft({"observedGeneration": 1}, 2, T0)
    invalid.invalid_spec("spec.targetVersion: must be a positive integer")
    suspended = step({"observedGeneration": -1}, suspend=True)
    suspended_at_target = step(ready, suspend=True)
    return {
        # The CRD defaults status.observedGeneration to -1: a new object never looks reconciled.
        "new (as the API server returns it)": ({"observedGeneration": -1}, 1, "InProgress"),
        "BackingUp": (backing_up, 1, "InProgress"),
        "Migrating": (migrating, 1, "InProgress"),
        "Ready": (ready, 1, "Current"),
        "Ready, spec changed since": (ready, 2, "InProgress"),
        "Failed (stalled)": (failed, 1, "Failed"),
        "Failed, retry scheduled": (retrying, 1, "InProgress"),
        "Failed (invalid spec)": (invalid.data, 2, "Failed"),
        # Not at its target: whoever waits for it (a Flux health check) keeps waiting, as it should.
        "Suspended before its target": (suspended, 1, "InProgress"),
        "Suspended at its target": (suspended_at_target, 1, "Current"),
    }


def test_kstatus_agrees_on_every_phase(checker: Path) -> None:
    cases = phases()
    objects = [
        {
            "apiVersion": "baselinr.io/v1alpha1",
            "kind": "BaselinrSchema",
            "metadata": {"name": name, "namespace": "team-a", "generation": gen},
            "status": status,
        }
        for name, (status, gen, _) in cases.items()
    ]
    done = subprocess.run([str(checker)], input=json.dumps(objects), capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    verdicts = {v["name"]: (v["status"], v["message"]) for v in json.loads(done.stdout)}
    got = {name: verdicts[name][0] for name in cases}
    assert got == {name: want for name, (_, _, want) in cases.items()}, verdicts
    assert cases["Migrating"][0]["phase"] == "Migrating" and cases["Failed (stalled)"][0]["phase"] == "Failed"
    assert "Migration v3 failed" in verdicts["Failed (stalled)"][1]  # what Flux shows is the operator's message
