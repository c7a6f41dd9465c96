"""The operator's leader election against a real API server's ``coordination.k8s.io`` Leases: of two
candidates exactly one leads; a leader that stops renewing (as a frozen process does) keeps the Lease
until its duration has passed on the standby's clock, and stops acting itself at its renew deadline;
a leader that stops cleanly hands the Lease over at once.

Two ``Elector``s run in this process with short timings (lease 3 s, renew deadline 2 s, retry 0.3 s).
The operator's replicas as pods, failing over mid-run, are ``tests/node/test_failover.py``.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .cluster import Cluster
from .waiting import wait_for

pytestmark = pytest.mark.e2e

LEASE_SECONDS, RENEW_DEADLINE, RETRY = 3.0, 2.0, 0.3


class Candidate:
    def __init__(self, namespace: str, lease: str, identity: str) -> None:
        from baselinr_operator.leader import ElectionSettings, Elector, Leadership

        self.leadership = Leadership(enabled=True)
        self.elected: list[float] = []
        self.lost: list[float] = []
        settings = ElectionSettings(lease, namespace, identity, LEASE_SECONDS, RENEW_DEADLINE, RETRY)
        self.elector = Elector(
            settings, self.leadership, lambda: self.elected.append(time.monotonic()), lambda: self.lost.append(time.monotonic())
        )
        self.identity = identity

    def freeze(self) -> None:
        """Stop renewing without a word, as a process stopped by SIGSTOP does (its thread simply ends)."""
        self.elector._stop.set()
        self.elector._thread.join(timeout=5)


@pytest.fixture
def candidates(k8s: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Candidate]]:
    from baselinr_operator import kube

    monkeypatch.setenv("KUBECONFIG", str(k8s.kubeconfig))
    kube.close()
    lease = f"lease-{secrets.token_hex(3)}"
    made = [Candidate(namespace, lease, f"replica-{i}") for i in "ab"]
    yield made
    for c in made:
        c.elector.stop(release=False)
    kube.close()


def holder(k8s: Cluster, namespace: str, lease: str) -> Any:
    found = k8s.get_json("lease", lease, "-n", namespace) or {}
    return (found.get("spec") or {}).get("holderIdentity")


def test_one_of_two_leads_and_a_silent_leader_is_replaced_only_after_the_lease_duration(
    k8s: Cluster, namespace: str, candidates: list[Candidate]
) -> None:
    for c in candidates:
        c.elector.start()
    wait_for(lambda: any(c.leadership.leads() for c in candidates), timeout=20, what="a leader")
    # Several renewals later, still exactly one.
    for _ in range(10):
        assert sum(c.leadership.leads() for c in candidates) == 1
        threading.Event().wait(RETRY)
    leader = next(c for c in candidates if c.leadership.leads())
    standby = next(c for c in candidates if c is not leader)
    lease = leader.elector.settings.lease_name
    assert holder(k8s, namespace, lease) == leader.identity and not standby.elected

    frozen_at = time.monotonic()
    leader.freeze()
    # The silent leader stops acting by its own deadline, before the standby may take over.
    wait_for(lambda: not leader.leadership.leads(), timeout=RENEW_DEADLINE + 1, what="the frozen leader to stop acting")
    stopped_acting = time.monotonic() - frozen_at
    wait_for(lambda: standby.leadership.leads(), timeout=LEASE_SECONDS * 4, what="the standby to take over")
    took_over = standby.elected[0] - frozen_at
    assert stopped_acting <= RENEW_DEADLINE + RETRY < took_over
    assert took_over >= LEASE_SECONDS - RENEW_DEADLINE  # never while the old leader could still act
    assert holder(k8s, namespace, lease) == standby.identity
    found = k8s.get_json("lease", lease, "-n", namespace)
    assert found["spec"]["leaseTransitions"] == 1
    print(f"\nsilent leader: stopped acting after {stopped_acting:.2f} s, standby took over after {took_over:.2f} s "
          f"(lease {LEASE_SECONDS:.0f} s, renew deadline {RENEW_DEADLINE:.0f} s, retry {RETRY} s)")  # fmt: skip


def test_a_leader_that_stops_cleanly_hands_the_lease_over_at_once(
    k8s: Cluster, namespace: str, candidates: list[Candidate]
) -> None:
    first, second = candidates
    first.elector.start()
    wait_for(lambda: first.leadership.leads(), timeout=20, what="the first candidate to lead")
    second.elector.start()
    threading.Event().wait(RETRY * 3)
    assert not second.leadership.leads()
    stopped = time.monotonic()
    first.elector.stop(release=True)
    assert not first.leadership.leads()
    wait_for(lambda: second.leadership.leads(), timeout=LEASE_SECONDS, what="the standby to take the released Lease")
    took_over = second.elected[0] - stopped
    assert took_over < LEASE_SECONDS - 0.5, took_over  # without waiting out the lease duration
    print(f"\nreleased lease taken over after {took_over:.2f} s (retry period {RETRY} s)")
