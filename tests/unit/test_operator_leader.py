"""The leader election's decisions (``baselinr_operator.leader``), without a server: when a candidate
may take the Lease, what it writes, and when a leader must stop acting. The election against a real
API server is ``tests/e2e/test_leader_election.py``; replicas as pods, ``tests/node/test_failover.py``."""

from __future__ import annotations

import time

import pytest

from baselinr_operator.leader import ElectionSettings, Leadership, Move, Observed, decide, lease_body
from baselinr_operator.settings import OperatorSettings

ME = "operator-b_222222"
OTHER = "operator-a_111111"


def lease(holder: str | None, renew: str | None = "2026-12-08T00:00:00.000000Z", seconds: int = 15) -> dict:
    return {
        "metadata": {"name": "baselinr-operator", "namespace": "ops", "resourceVersion": "7"},
        "spec": {"holderIdentity": holder, "renewTime": renew, "leaseDurationSeconds": seconds, "leaseTransitions": 2},
    }


def test_no_lease_or_a_released_one_is_taken_at_once() -> None:
    assert decide(None, Observed(), ME, now=100.0, default_seconds=15) is Move.TAKE
    assert decide(lease(None), Observed(), ME, now=100.0, default_seconds=15) is Move.TAKE


def test_a_held_lease_is_taken_only_after_its_duration_unchanged_on_the_candidates_own_clock() -> None:
    seen = Observed()
    assert decide(lease(OTHER), seen, ME, now=100.0, default_seconds=99) is Move.WAIT  # first seen now
    assert decide(lease(OTHER), seen, ME, now=114.9, default_seconds=99) is Move.WAIT
    assert decide(lease(OTHER), seen, ME, now=115.0, default_seconds=99) is Move.TAKE  # the Lease's own 15 s


def test_a_renewal_seen_starts_the_wait_again() -> None:
    seen = Observed()
    decide(lease(OTHER, "2026-12-08T00:00:00.000000Z"), seen, ME, now=100.0, default_seconds=15)
    assert decide(lease(OTHER, "2026-12-08T00:00:02.000000Z"), seen, ME, now=114.0, default_seconds=15) is Move.WAIT
    assert decide(lease(OTHER, "2026-12-08T00:00:02.000000Z"), seen, ME, now=128.9, default_seconds=15) is Move.WAIT
    assert decide(lease(OTHER, "2026-12-08T00:00:02.000000Z"), seen, ME, now=129.0, default_seconds=15) is Move.TAKE


def test_a_lease_without_a_duration_uses_the_candidates() -> None:
    body = lease(OTHER)
    del body["spec"]["leaseDurationSeconds"]
    seen = Observed()
    decide(body, seen, ME, now=0.0, default_seconds=5)
    assert decide(body, seen, ME, now=5.0, default_seconds=5) is Move.TAKE


def test_taking_counts_a_transition_and_carries_the_resource_version_read() -> None:
    settings = ElectionSettings("baselinr-operator", "ops", ME, lease_seconds=15)
    taken = lease_body(settings, lease(OTHER), renew=False)
    assert taken["metadata"]["resourceVersion"] == "7"  # of two candidates, one write succeeds
    spec = taken["spec"]
    assert spec["holderIdentity"] == ME and spec["leaseTransitions"] == 3 and spec["leaseDurationSeconds"] == 15
    assert spec["acquireTime"] == spec["renewTime"] and spec["renewTime"].endswith("Z")
    renewed = lease_body(settings, {**taken, "metadata": {**taken["metadata"], "resourceVersion": "8"}}, renew=True)
    assert renewed["spec"]["leaseTransitions"] == 3 and renewed["spec"]["acquireTime"] == spec["acquireTime"]
    created = lease_body(settings, None, renew=False)
    assert "resourceVersion" not in created["metadata"] and created["spec"]["leaseTransitions"] == 0


def test_a_leader_acts_only_until_its_renew_deadline() -> None:
    leadership = Leadership(enabled=True)
    assert not leadership.leads()
    leadership.extend(time.monotonic() + 60)
    assert leadership.leads()
    leadership.extend(time.monotonic() - 0.001)  # a renewal overdue, e.g. after the process was frozen
    assert not leadership.leads()
    assert Leadership(enabled=False).leads()  # one replica alone always acts


def test_election_settings_from_the_environment() -> None:
    env = {
        "BASELINR_OPERATOR_LEADER_ELECTION": "true",
        "BASELINR_OPERATOR_LEASE_SECONDS": "9",
        "BASELINR_OPERATOR_RENEW_DEADLINE": "6",
        "BASELINR_OPERATOR_RETRY_PERIOD": "1",
    }
    settings = OperatorSettings.from_env(env)
    assert settings.leader_election and (settings.lease_seconds, settings.renew_deadline, settings.retry_period) == (9, 6, 1)
    assert not OperatorSettings.from_env({}).leader_election


@pytest.mark.parametrize(
    "env",
    [
        {"BASELINR_OPERATOR_LEADER_ELECTION": "maybe"},
        {"BASELINR_OPERATOR_RENEW_DEADLINE": "20"},  # not below the lease duration
        {"BASELINR_OPERATOR_RETRY_PERIOD": "12"},  # not below the renew deadline
    ],
)
def test_election_settings_that_cannot_work_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as exc:
        OperatorSettings.from_env(env)
    assert "BASELINR_OPERATOR_" in str(exc.value)
